# The seed's Alarms 1-4 and the ones its design implies, on the metrics the
# lag checker publishes (namespace Atlas, EMF) and on Lambda's own. Each
# notifies the SNS topic; the README's "Runbooks" says what each means and
# what to do. infra/check.py holds every Atlas metric named here to one the
# code emits.
resource "aws_sns_topic" "alarms" {
  name = "${local.name}-alarms"
  tags = local.tags
}

resource "aws_sns_topic_subscription" "alarms_email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  # One entry per alarm on a lag checker metric. Replica alarms watch the
  # worst replica, so they hold however RDS discovery names replicas. A
  # checker that stops publishing is itself a reason to wake someone:
  # missing data breaches where silence would hide the problem.
  freshness_alarms = merge(
    {
      "replica-lag-5s" = {
        description = "Alarm 1: a replica more than 5 s behind for 2 of 2 minutes (eventual reads are moving to the primary)"
        metric      = "ReplicaLagMaxSeconds", dimensions = {}, statistic = "Maximum"
        comparison  = "GreaterThanThreshold", threshold = 5, periods = 2, datapoints = 2, missing = "notBreaching"
      }
      "replica-lag-10s" = {
        description = "Alarm 2: a replica more than 10 s behind (critical)"
        metric      = "ReplicaLagMaxSeconds", dimensions = {}, statistic = "Maximum"
        comparison  = "GreaterThanThreshold", threshold = 10, periods = 1, datapoints = 1, missing = "notBreaching"
      }
      "replica-unreachable" = {
        description = "A replica did not answer the lag checker for 2 minutes"
        metric      = "ReplicasUnreachable", dimensions = {}, statistic = "Maximum"
        comparison  = "GreaterThanThreshold", threshold = 0, periods = 2, datapoints = 2, missing = "notBreaching"
      }
    },
    {
      "cdc-backlog" = {
        description = "Alarm 3: the CDC slot retains more than 1 GiB of WAL for 3 of 5 minutes (the connector or the loader is behind)"
        metric      = "CdcSlotRetainedBytes", dimensions = {}, statistic = "Maximum"
        comparison  = "GreaterThanThreshold", threshold = 1073741824, periods = 5, datapoints = 3, missing = "missing"
      }
      "warehouse-stale" = {
        description = "Alarm 4: the warehouse's newest load is more than 10 minutes old"
        metric      = "AnalyticsLagSeconds", dimensions = {}, statistic = "Minimum"
        comparison  = "GreaterThanThreshold", threshold = 600, periods = 2, datapoints = 2, missing = "breaching"
      }
      "heartbeat-stale" = {
        description = "No heartbeat for over a minute: replica lag can no longer be told"
        metric      = "HeartbeatAgeSeconds", dimensions = {}, statistic = "Minimum"
        comparison  = "GreaterThanThreshold", threshold = 60, periods = 2, datapoints = 2, missing = "breaching"
      }
      "projection-divergent" = {
        description = "Sampled hot projections have disagreed with their latest readings for 15 minutes (longer than a promotion takes)"
        metric      = "DivergentEntities", dimensions = {}, statistic = "Minimum"
        comparison  = "GreaterThanThreshold", threshold = 0, periods = 15, datapoints = 15, missing = "notBreaching"
      }
      "staging-oldest-60s" = {
        description = "A reading has waited over 60 s in staging: the flusher is behind or down"
        metric      = "StagingOldestSeconds", dimensions = {}, statistic = "Maximum"
        comparison  = "GreaterThanThreshold", threshold = 60, periods = 2, datapoints = 2, missing = "breaching"
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "freshness" {
  for_each            = local.freshness_alarms
  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = "${each.value.description}. Runbook: README.md, Runbooks, ${each.key}."
  namespace           = "Atlas"
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 60
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# Every function's errors and throttles, from Lambda's own metrics.
resource "aws_cloudwatch_metric_alarm" "lambda" {
  for_each = {
    for pair in setproduct(keys(local.functions), ["Errors", "Throttles"]) :
    "${pair[0]}-${lower(pair[1])}" => { function = pair[0], metric = pair[1] }
  }
  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = "${each.value.function}: ${each.value.metric} in 3 of 5 minutes. Runbook: README.md, Runbooks, lambda-${lower(each.value.metric)}."
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = aws_lambda_function.function[each.value.function].function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# How far each MSK-triggered function's consumer is behind its topics
# (Lambda publishes OffsetLag for Kafka event sources).
resource "aws_cloudwatch_metric_alarm" "msk_offset_lag" {
  for_each            = var.msk_cluster_arn == "" ? toset([]) : toset(["ingest", "cdc-loader"])
  alarm_name          = "${local.name}-${each.key}-offset-lag"
  alarm_description   = "${each.key}: more than ${var.msk_offset_lag_alarm} records behind on MSK for 3 of 5 minutes. Runbook: README.md, Runbooks, offset-lag."
  namespace           = "AWS/Lambda"
  metric_name         = "OffsetLag"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.msk_offset_lag_alarm
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# One page with all of it: freshness per path, the pipeline, the functions.
resource "aws_cloudwatch_dashboard" "atlas" {
  dashboard_name = local.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "Replica lag (s)", region = var.region, view = "timeSeries", stat = "Maximum", period = 60
          # Every replica, whatever it is called, and the worst of them.
          metrics = [
            [{ expression = "SEARCH('{Atlas,Replica} MetricName=\"ReplicaLagSeconds\"', 'Maximum', 60)", id = "each" }],
            ["Atlas", "ReplicaLagMaxSeconds"],
          ]
          annotations = { horizontal = [{ label = "Alarm 1", value = 5 }, { label = "Alarm 2", value = 10 }] }
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title   = "Staging and heartbeat (s)", region = var.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [["Atlas", "StagingOldestSeconds"], ["Atlas", "HeartbeatAgeSeconds"], ["Atlas", "StagingDepth", { yAxis = "right" }]]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title   = "Warehouse lag (s) and CDC slot (bytes)", region = var.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [["Atlas", "AnalyticsLagSeconds"], ["Atlas", "CdcSlotRetainedBytes", { yAxis = "right" }]]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Function errors and throttles", region = var.region, view = "timeSeries", stat = "Sum", period = 60
          metrics = concat(
            [for f in keys(local.functions) : ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.function[f].function_name]],
            [for f in keys(local.functions) : ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.function[f].function_name]],
          )
        }
      },
      {
        type = "alarm", x = 0, y = 12, width = 24, height = 4
        properties = {
          title  = "Alarms"
          alarms = concat([for a in aws_cloudwatch_metric_alarm.freshness : a.arn], [for a in aws_cloudwatch_metric_alarm.msk_offset_lag : a.arn])
        }
      },
    ]
  })
}

# Replica discovery (ATLAS_RDS_PRIMARY_ID): DescribeDBInstances cannot be
# limited to one instance for listing replicas, so it is allowed on the
# account's instances, read only.
data "aws_iam_policy_document" "rds_discovery" {
  statement {
    actions   = ["rds:DescribeDBInstances"]
    resources = ["arn:aws:rds:${var.region}:${data.aws_caller_identity.current.account_id}:db:*"]
  }
}

resource "aws_iam_role_policy" "rds_discovery" {
  for_each = var.rds_primary_id == "" ? toset([]) : toset(["query-api", "lag-checker"])
  name     = "rds-discovery"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.rds_discovery.json
}
