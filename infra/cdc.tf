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

data "aws_iam_policy_document" "warehouse" {
  statement {
    actions = [
      "redshift-data:ExecuteStatement",
      "redshift-data:BatchExecuteStatement",
      "redshift-serverless:GetCredentials",
    ]
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
  name   = "warehouse"
  role   = aws_iam_role.function["cdc-loader"].id
  policy = data.aws_iam_policy_document.warehouse.json
}
