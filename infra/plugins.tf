# Tenant plugins: modules and precompiled artifacts by content hash. Only
# the query API writes new modules; ingest reads them and may rewrite an
# artifact its engine cannot use. Nothing here is public. Functions run in
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

data "aws_iam_policy_document" "plugins" {
  statement {
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.plugins.arn}/plugins/*"]
  }
}

# Ingest keeps MSK records that can never succeed under dead-letter/, with
# their reason and raw bytes; it may add letters there and nothing else.
data "aws_iam_policy_document" "dead_letters" {
  statement {
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.plugins.arn}/dead-letter/*"]
  }
}

resource "aws_iam_role_policy" "dead_letters" {
  name   = "dead-letters"
  role   = aws_iam_role.function["ingest"].id
  policy = data.aws_iam_policy_document.dead_letters.json
}

resource "aws_iam_role_policy" "plugins" {
  for_each = toset(["ingest", "query-api"])
  name     = "plugin-objects"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.plugins.json
}
