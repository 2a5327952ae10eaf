# Database credentials: one Secrets Manager secret per function, holding its
# own login (migration V9 creates atlas_ingest, atlas_query, atlas_flusher
# and atlas_heartbeat, V13 atlas_lag_checker) in the JSON shape RDS manages: username, password
# (and host, port, dbname, which Atlas takes from database_url). Terraform
# creates the secrets, never their values, so no password is in the plan,
# the state or a function's environment. Set each one once, and again on
# rotation (the functions read it again when the database refuses a login):
#   aws secretsmanager put-secret-value --secret-id atlas-dev/db/ingest \
#     --secret-string '{"username":"atlas_ingest","password":"..."}'
# With db_iam_auth, the functions instead sign an RDS IAM token per
# connection (GRANT rds_iam TO each login) and no secret is read.
locals {
  db_logins = {
    ingest        = "atlas_ingest"
    "query-api"   = "atlas_query"
    flusher       = "atlas_flusher"
    heartbeat     = "atlas_heartbeat"
    "lag-checker" = "atlas_lag_checker"
  }
  db_credentials_env = {
    for f, _ in local.db_logins : f => var.db_iam_auth ? {
      ATLAS_DB_IAM_AUTH = "1"
      } : {
      ATLAS_DB_SECRET_ID = aws_secretsmanager_secret.db[f].arn
    }
  }
}

resource "aws_secretsmanager_secret" "db" {
  for_each    = var.db_iam_auth ? {} : local.db_logins
  name        = "${local.name}/db/${each.key}"
  description = "Database login ${each.value} of the ${each.key} function"
  tags        = local.tags
}

data "aws_iam_policy_document" "db_secret" {
  for_each = aws_secretsmanager_secret.db
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [each.value.arn]
  }
}

resource "aws_iam_role_policy" "db_secret" {
  for_each = aws_secretsmanager_secret.db
  name     = "db-secret"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.db_secret[each.key].json
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "db_connect" {
  for_each = var.db_iam_auth ? local.db_logins : {}
  statement {
    actions   = ["rds-db:connect"]
    resources = ["arn:aws:rds-db:${var.region}:${data.aws_caller_identity.current.account_id}:dbuser:${var.db_resource_id}/${each.value}"]
  }
}

resource "aws_iam_role_policy" "db_connect" {
  for_each = data.aws_iam_policy_document.db_connect
  name     = "db-connect"
  role     = aws_iam_role.function[each.key].id
  policy   = each.value.json
}
