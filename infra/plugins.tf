# Tenant plugins: modules and precompiled artifacts, each by its own
# content hash. Only the query API writes them; ingest reads. Nothing here
# is public. Functions run in
# the VPC, so the VPC needs an S3 gateway endpoint (or a NAT) to reach it.
resource "aws_s3_bucket" "plugins" {
  bucket_prefix = "${local.name}-plugins-"
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "plugins" {
  bucket                  = aws_s3_bucket.plugins.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "plugins" {
  bucket = aws_s3_bucket.plugins.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Only the registry (query API) writes modules and artifacts. Ingest only
# reads them: an artifact is native code, and ingest runs one only when its
# hash matches the one the registry recorded in tenant_plugins.
data "aws_iam_policy_document" "plugins_read" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.plugins.arn}/plugins/*"]
  }
}

data "aws_iam_policy_document" "plugins_write" {
  statement {
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.plugins.arn}/plugins/*"]
  }
}

# Ingest and the CDC loader keep MSK records that can never succeed under
# dead-letter/<function>/, with their reason and raw bytes; each may add
# letters there and nothing else.
data "aws_iam_policy_document" "dead_letters" {
  for_each = toset(["ingest", "cdc-loader"])
  statement {
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.plugins.arn}/dead-letter/${each.key}/*"]
  }
}

resource "aws_iam_role_policy" "dead_letters" {
  for_each = data.aws_iam_policy_document.dead_letters
  name     = "dead-letters"
  role     = aws_iam_role.function[each.key].id
  policy   = each.value.json
}

moved {
  from = aws_iam_role_policy.dead_letters
  to   = aws_iam_role_policy.dead_letters["ingest"]
}

resource "aws_iam_role_policy" "plugins" {
  for_each = {
    ingest      = data.aws_iam_policy_document.plugins_read.json
    "query-api" = data.aws_iam_policy_document.plugins_write.json
  }
  name   = "plugin-objects"
  role   = aws_iam_role.function[each.key].id
  policy = each.value
}
