# The flusher, the heartbeat and the lag checker run every minute and loop
# inside each invocation until shortly before its deadline; two
# overlapping runs are safe for all three (SKIP LOCKED; the checker's
# status rows are replaced whole).
locals {
  scheduled = toset(["flusher", "heartbeat", "lag-checker"])
}

resource "aws_cloudwatch_event_rule" "schedule" {
  for_each            = local.scheduled
  name                = "${local.name}-${each.key}"
  schedule_expression = "rate(1 minute)"
}

resource "aws_cloudwatch_event_target" "schedule" {
  for_each = local.scheduled
  rule     = aws_cloudwatch_event_rule.schedule[each.key].name
  arn      = aws_lambda_function.function[each.key].arn
}

resource "aws_lambda_permission" "schedule" {
  for_each      = local.scheduled
  statement_id  = "AllowEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.key].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule[each.key].arn
}

moved {
  from = aws_cloudwatch_event_rule.flusher
  to   = aws_cloudwatch_event_rule.schedule["flusher"]
}

moved {
  from = aws_cloudwatch_event_target.flusher
  to   = aws_cloudwatch_event_target.schedule["flusher"]
}

moved {
  from = aws_lambda_permission.events_flusher
  to   = aws_lambda_permission.schedule["flusher"]
}

# Raw telemetry from MSK into the same ingest function. Ingest dead-letters
# records that can never succeed itself and fails an invocation only when
# the database is unreachable or its plugin budget left records for the
# retry (which then goes on where it stopped). A batch that still fails
# after the retries goes, with its records, to the on-failure bucket.
resource "aws_lambda_event_source_mapping" "raw_telemetry" {
  count             = var.msk_cluster_arn == "" ? 0 : 1
  event_source_arn  = var.msk_cluster_arn
  function_name     = aws_lambda_function.function["ingest"].arn
  topics            = [var.raw_telemetry_topic]
  starting_position = "TRIM_HORIZON"
  batch_size        = var.msk_batch_size

  destination_config {
    on_failure {
      destination_arn = aws_s3_bucket.msk_failures[0].arn
    }
  }
}

resource "aws_s3_bucket" "msk_failures" {
  count         = var.msk_cluster_arn == "" ? 0 : 1
  bucket_prefix = "${local.name}-msk-failures-"
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "msk_failures" {
  count                   = var.msk_cluster_arn == "" ? 0 : 1
  bucket                  = aws_s3_bucket.msk_failures[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "msk_failures" {
  count  = var.msk_cluster_arn == "" ? 0 : 1
  bucket = aws_s3_bucket.msk_failures[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Lambda writes the failed batch with the function's own role.
data "aws_iam_policy_document" "msk_failures" {
  count = var.msk_cluster_arn == "" ? 0 : 1
  statement {
    actions   = ["s3:PutObject", "s3:ListBucket"]
    resources = [aws_s3_bucket.msk_failures[0].arn, "${aws_s3_bucket.msk_failures[0].arn}/*"]
  }
}

resource "aws_iam_role_policy" "ingest_msk_failures" {
  count  = var.msk_cluster_arn == "" ? 0 : 1
  name   = "msk-failures"
  role   = aws_iam_role.function["ingest"].id
  policy = data.aws_iam_policy_document.msk_failures[0].json
}

data "aws_iam_policy_document" "msk_read" {
  count = var.msk_cluster_arn == "" ? 0 : 1
  statement {
    actions = [
      "kafka:DescribeCluster",
      "kafka:DescribeClusterV2",
      "kafka:GetBootstrapBrokers",
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeGroup",
      "kafka-cluster:AlterGroup",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:ReadData",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "ingest_msk" {
  count  = var.msk_cluster_arn == "" ? 0 : 1
  name   = "msk-read"
  role   = aws_iam_role.function["ingest"].id
  policy = data.aws_iam_policy_document.msk_read[0].json
}
