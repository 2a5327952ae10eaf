# Changes from PostgreSQL to the warehouse: the Debezium connector (MSK
# Connect, configuration in infra/debezium/connector.json) writes one topic
# per published table; the CDC loader reads them. An MSK event source
# mapping takes one topic, so there is one per table. Records that can
# never load are dead-lettered by the loader itself; a batch that still
# fails after Lambda's retries goes, with its records, to the on-failure
# bucket the raw telemetry trigger uses.
resource "aws_lambda_event_source_mapping" "cdc" {
  for_each          = var.msk_cluster_arn == "" ? toset([]) : toset(var.cdc_topics)
  event_source_arn  = var.msk_cluster_arn
  function_name     = aws_lambda_function.function["cdc-loader"].arn
  topics            = [each.key]
  starting_position = "TRIM_HORIZON"
  batch_size        = var.cdc_batch_size
  # Seconds, not minutes: the warehouse is meant to be seconds behind.
  maximum_batching_window_in_seconds = var.cdc_batching_window_secs

  destination_config {
    on_failure {
      destination_arn = aws_s3_bucket.msk_failures[0].arn
    }
  }
}

resource "aws_iam_role_policy" "cdc_msk" {
  count  = var.msk_cluster_arn == "" ? 0 : 1
  name   = "msk-read"
  role   = aws_iam_role.function["cdc-loader"].id
  policy = data.aws_iam_policy_document.msk_read[0].json
}

resource "aws_iam_role_policy" "cdc_msk_failures" {
  count  = var.msk_cluster_arn == "" ? 0 : 1
  name   = "msk-failures"
  role   = aws_iam_role.function["cdc-loader"].id
  policy = data.aws_iam_policy_document.msk_failures[0].json
}

# The Redshift Data API on the warehouse's workgroup only, with temporary
# credentials for it: no database password exists for the loader.
locals {
  warehouse_workgroup = var.redshift_workgroup_arn != "" ? var.redshift_workgroup_arn : "arn:aws:redshift-serverless:${var.region}:${data.aws_caller_identity.current.account_id}:workgroup/*"
}

# The loader writes and reads; the query API only reads (analytics), so
# it cannot start a batch. Redshift itself decides what each may touch:
# each role logs in as its own database user (IAMR:<role name>), which the
# README's grants limit.
data "aws_iam_policy_document" "warehouse" {
  for_each = {
    "cdc-loader" = ["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"]
    "query-api"  = ["redshift-data:ExecuteStatement"]
    # The load watermark, for the warehouse's lag.
    "lag-checker" = ["redshift-data:ExecuteStatement"]
  }
  statement {
    actions   = concat(each.value, ["redshift-serverless:GetCredentials"])
    resources = [local.warehouse_workgroup]
  }
  # Statement ids are not resources; the Data API lets only the caller who
  # ran a statement describe it, read its result or cancel it.
  statement {
    actions = [
      "redshift-data:DescribeStatement",
      "redshift-data:GetStatementResult",
      "redshift-data:CancelStatement",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "warehouse" {
  for_each = data.aws_iam_policy_document.warehouse
  name     = "warehouse"
  role     = aws_iam_role.function[each.key].id
  policy   = each.value.json
}

moved {
  from = aws_iam_role_policy.warehouse
  to   = aws_iam_role_policy.warehouse["cdc-loader"]
}

# Each load is staged as JSON-lines files under cdc-batches/<load>/ in the
# plugin bucket; the loader may write there and nothing else new.
data "aws_iam_policy_document" "cdc_staging_write" {
  statement {
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.plugins.arn}/cdc-batches/*"]
  }
}

resource "aws_iam_role_policy" "cdc_staging" {
  name   = "cdc-staging"
  role   = aws_iam_role.function["cdc-loader"].id
  policy = data.aws_iam_policy_document.cdc_staging_write.json
}

# The role Redshift assumes for the loader's COPY: it reads the staged
# batches and nothing else in the bucket. Associate it with the warehouse's
# namespace (output warehouse_copy_role); COPY names it per statement.
data "aws_iam_policy_document" "assume_redshift" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["redshift.amazonaws.com", "redshift-serverless.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "warehouse_copy" {
  name               = "${local.name}-warehouse-copy"
  assume_role_policy = data.aws_iam_policy_document.assume_redshift.json
  tags               = local.tags
}

data "aws_iam_policy_document" "cdc_staging_read" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.plugins.arn}/cdc-batches/*"]
  }
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.plugins.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["cdc-batches/*"]
    }
  }
}

resource "aws_iam_role_policy" "warehouse_copy" {
  name   = "cdc-staging-read"
  role   = aws_iam_role.warehouse_copy.id
  policy = data.aws_iam_policy_document.cdc_staging_read.json
}

# A staged batch is needed only while its load runs (Lambda retries a
# failed one within minutes, and restages it anyway).
resource "aws_s3_bucket_lifecycle_configuration" "plugins" {
  bucket = aws_s3_bucket.plugins.id
  rule {
    id     = "cdc-batches"
    status = "Enabled"
    filter {
      prefix = "cdc-batches/"
    }
    expiration {
      days = var.cdc_staging_retention_days
    }
  }
}
