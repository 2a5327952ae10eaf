variable "environment" {
  description = "Deployment environment: dev, staging or prod."
  type        = string
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "artifacts_dir" {
  description = "Where `cargo lambda build --release --arm64 --output-format zip` put the functions (target/lambda)."
  type        = string
  default     = "../target/lambda"
}

variable "database_url" {
  description = "PostgreSQL URL for the functions without a password (an RDS Proxy endpoint, its port and database; TLS is used for every non-local host). Each function's login and password come from its secret (credentials.tf) or an IAM token."
  type        = string
}

variable "db_iam_auth" {
  description = "Connect with RDS IAM auth tokens instead of Secrets Manager passwords (each login needs GRANT rds_iam)."
  type        = bool
  default     = false
}

variable "db_resource_id" {
  description = "The DB instance's or proxy's resource id (db-..., prx-...), for rds-db:connect when db_iam_auth is set."
  type        = string
  default     = ""
}

variable "rds_primary_id" {
  description = "RDS instance identifier of the primary: its read replicas, as RDS lists them at each cold start, replace replica_urls (same login and database, their own endpoints). Empty: replica_urls."
  type        = string
  default     = ""
}

variable "replica_urls" {
  description = "PostgreSQL URLs of streaming replicas (e.g. RDS read replicas) for eventual and analytics reads; empty sends every read to the primary."
  type        = list(string)
  default     = []
  sensitive   = true
}

variable "redis_url" {
  description = "Redis (ElastiCache) URL for the hot-entity cache, rediss:// for TLS; empty runs without a cache."
  type        = string
  default     = ""
  sensitive   = true
}

variable "db_ca_bundle_path" {
  description = "Path inside the function package of the RDS CA bundle (PEM); empty for the public web roots only."
  type        = string
  default     = ""
}

variable "subnet_ids" {
  description = "Private subnets the functions run in (they reach RDS and MSK there)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups for the functions."
  type        = list(string)
}

variable "jwt_issuer" {
  description = "Issuer URL of the identity provider whose JWTs carry the tenant_id claim."
  type        = string
}

variable "jwt_audience" {
  description = "Accepted audiences of those JWTs."
  type        = list(string)
}

variable "msk_cluster_arn" {
  description = "MSK cluster with the raw telemetry topic; empty to deploy without the MSK trigger."
  type        = string
  default     = ""
}

variable "raw_telemetry_topic" {
  description = "Topic of raw readings; each record value is {\"readings\": [...]} and its tenant_id header names the tenant."
  type        = string
  default     = "atlas.raw-telemetry"
}

variable "msk_batch_size" {
  description = "Records per ingest invocation from MSK (Lambda allows up to 10,000)."
  type        = number
  default     = 500
}

variable "max_body_bytes" {
  description = "ATLAS_MAX_BODY_BYTES: largest accepted request body."
  type        = number
  default     = 5242880
}

variable "max_readings" {
  description = "ATLAS_MAX_READINGS: most readings per request or MSK record."
  type        = number
  default     = 10000
}

variable "flush_batch" {
  description = "ATLAS_FLUSH_BATCH: staging rows per row-by-row flush transaction."
  type        = number
  default     = 20000
}

variable "flush_drain_mb" {
  description = "ATLAS_FLUSH_DRAIN_MB: the biggest staging slot drained whole in one transaction (1-1024)."
  type        = number
  default     = 64
}

variable "flush_interval_ms" {
  description = "ATLAS_FLUSH_INTERVAL_MS: pause when staging is empty (100-1000)."
  type        = number
  default     = 250
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention."
  type        = number
  default     = 30
}

variable "cdc_topics" {
  description = "Debezium topics the CDC loader reads: <topic.prefix>.<schema>.<table> for each published table."
  type        = list(string)
  default = [
    "atlas.public.tenants",
    "atlas.public.attributes",
    "atlas.public.entities",
    "atlas.public.entity_values_ts",
    "atlas.public.entity_jsonb",
  ]
}

variable "cdc_batch_size" {
  description = "Records per CDC loader invocation (Lambda allows up to 10,000 from MSK)."
  type        = number
  default     = 10000
}

variable "cdc_batching_window_secs" {
  description = "Longest the event source mapping gathers a CDC batch before invoking the loader."
  type        = number
  default     = 1
}

variable "cdc_staging_retention_days" {
  description = "Days a CDC batch's staged files are kept in S3 after its load (for looking into a failed one)."
  type        = number
  default     = 1
}

variable "redshift_workgroup" {
  description = "Redshift Serverless workgroup of the warehouse."
  type        = string
  default     = "atlas"
}

variable "redshift_workgroup_arn" {
  description = "ARN of that workgroup, to which the loader's Data API access is limited; empty: any workgroup of the account."
  type        = string
  default     = ""
}

variable "redshift_database" {
  description = "Warehouse database in the workgroup."
  type        = string
  default     = "atlas"
}

variable "alarm_email" {
  description = "Address subscribed to the alarms' SNS topic (confirm the subscription mail); empty: subscribe yourself."
  type        = string
  default     = ""
}

variable "msk_offset_lag_alarm" {
  description = "Records an MSK-triggered function may be behind its topic before the offset-lag alarm (the seed's Alarm 3 says 50,000)."
  type        = number
  default     = 50000
}
