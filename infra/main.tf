locals {
  name = "atlas-${var.environment}"
  tags = {
    Project     = "atlas"
    Environment = var.environment
    ManagedBy   = "terraform"
  }

  # Settings every function reads; see README "Configuration".
  common_env = {
    DATABASE_URL             = var.database_url
    ATLAS_DB_CA_BUNDLE       = var.db_ca_bundle_path
    ATLAS_ACCEPT_PAST_SECS   = "2592000"
    ATLAS_ACCEPT_FUTURE_SECS = "3600"
    RUST_LOG                 = "info"
  }

  # Plugin modules and their precompiled artifacts, by SHA-256.
  plugin_store = "s3://${aws_s3_bucket.plugins.bucket}/"

  warehouse_url = "redshift://${var.redshift_workgroup}/${var.redshift_database}"

  functions = {
    ingest = {
      description = "Authenticates, types and stages telemetry (API Gateway + MSK)."
      memory      = 1024
      timeout     = 30
      env = {
        ATLAS_MAX_BODY_BYTES = tostring(var.max_body_bytes)
        ATLAS_MAX_READINGS   = tostring(var.max_readings)
        ATLAS_CATALOG_TTL_MS = "5000"
        ATLAS_OBJECT_STORE   = local.plugin_store
      }
    }
    heartbeat = {
      description = "Writes replication_heartbeat every few seconds; replica lag is read from it."
      memory      = 128
      timeout     = 70
      env = {
        ATLAS_HEARTBEAT_INTERVAL_MS    = "5000"
        ATLAS_HEARTBEAT_RETENTION_SECS = "86400"
        ATLAS_HEARTBEAT_STOP_MARGIN_MS = "2000"
      }
    }
    lag-checker = {
      description = "Measures every read path's freshness; publishes metrics and freshness_status."
      memory      = 256
      timeout     = 70
      env = {
        ATLAS_REPLICA_URLS             = join(",", var.replica_urls)
        ATLAS_RDS_PRIMARY_ID           = var.rds_primary_id
        ATLAS_LAG_CHECK_INTERVAL_MS    = "10000"
        ATLAS_LAG_CHECK_STOP_MARGIN_MS = "2000"
        # The Debezium connector's slot.name (infra/debezium/connector.json).
        ATLAS_CDC_SLOT      = "atlas_cdc"
        ATLAS_WAREHOUSE_URL = local.warehouse_url
        # The query API's cache: the status shows whether Redis answers.
        ATLAS_REDIS_URL = var.redis_url
      }
    }
    query-api = {
      description = "Serves the API's reads and the plugin registry (API Gateway)."
      # Uploads compile the module with Cranelift; more memory is more CPU.
      memory  = 1769
      timeout = 30
      env = {
        ATLAS_OBJECT_STORE         = local.plugin_store
        ATLAS_CATALOG_TTL_MS       = "5000"
        ATLAS_REPLICA_URLS         = join(",", var.replica_urls)
        ATLAS_RDS_PRIMARY_ID       = var.rds_primary_id
        ATLAS_REPLICA_MAX_LAG_SECS = "5"
        ATLAS_PRIMARY_FALLBACK_MAX = "16"
        ATLAS_REDIS_URL            = var.redis_url
        ATLAS_CACHE_TTL_SECS       = "30"
        ATLAS_REDIS_TIMEOUT_MS     = "100"
        # Every container must sign and check search cursors alike.
        ATLAS_CURSOR_KEY = random_password.cursor_key.result
        # Analytics reads (consistency=analytics) go to the warehouse.
        ATLAS_WAREHOUSE_URL = local.warehouse_url
      }
    }
    cdc-loader = {
      description = "Loads Debezium change batches from MSK into the Redshift warehouse."
      memory      = 1024
      timeout     = 120
      env = {
        ATLAS_WAREHOUSE_URL = local.warehouse_url
        # Dead letters under dead-letter/cdc-loader/, and each batch staged
        # under cdc-batches/ for Redshift's COPY, which reads it as this role.
        ATLAS_OBJECT_STORE        = local.plugin_store
        ATLAS_WAREHOUSE_COPY_ROLE = aws_iam_role.warehouse_copy.arn
      }
    }
    flusher = {
      description = "Moves staging into entity_values_ts and entity_jsonb, every minute."
      memory      = 512
      timeout     = 70
      env = {
        ATLAS_FLUSH_BATCH          = tostring(var.flush_batch)
        ATLAS_FLUSH_DRAIN_MB       = tostring(var.flush_drain_mb)
        ATLAS_FLUSH_INTERVAL_MS    = tostring(var.flush_interval_ms)
        ATLAS_FLUSH_STOP_MARGIN_MS = "3000"
        # Changed entities are dropped from the query API's cache.
        ATLAS_REDIS_URL = var.redis_url
      }
    }
  }
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

resource "aws_iam_role_policy_attachment" "vpc_access" {
  for_each   = local.functions
  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${local.name}-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "function" {
  for_each         = local.functions
  function_name    = "${local.name}-${each.key}"
  description      = each.value.description
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.artifacts_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.artifacts_dir}/${each.key}/bootstrap.zip")
  memory_size      = each.value.memory
  timeout          = each.value.timeout

  environment {
    variables = merge(local.common_env, each.value.env, lookup(local.db_credentials_env, each.key, {}))
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.function]
}

# Signs the query API's search cursors (HMAC-SHA256). It is in the query
# API's environment and the state for now, unlike the database credentials.
resource "random_password" "cursor_key" {
  length  = 48
  special = false
}
