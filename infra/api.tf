# API Gateway HTTP API in front of ingest and the query API. The JWT authorizer checks the
# identity provider's token; the function reads the tenant from the
# authorizer context (claim tenant_id), never from the body.
resource "aws_apigatewayv2_api" "http" {
  name          = local.name
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  api_id           = aws_apigatewayv2_api.http.id
  name             = "tenant-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]
  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audience
  }
}

resource "aws_apigatewayv2_integration" "ingest" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.function["ingest"].invoke_arn
  payload_format_version = "2.0"
}

# Each route names the scope its token must carry (the same as its
# operation's in shared/query/openapi.json; check.py holds them together);
# the functions check it again.
resource "aws_apigatewayv2_route" "post_telemetry" {
  api_id               = aws_apigatewayv2_api.http.id
  route_key            = "POST /v1/telemetry"
  target               = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type   = "JWT"
  authorizer_id        = aws_apigatewayv2_authorizer.jwt.id
  authorization_scopes = ["telemetry:write"]
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true
  default_route_settings {
    throttling_burst_limit = 2000
    throttling_rate_limit  = 1000
  }
}

resource "aws_lambda_permission" "api_ingest" {
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["ingest"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}

resource "aws_apigatewayv2_integration" "query_api" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.function["query-api"].invoke_arn
  payload_format_version = "2.0"
}

# Entity reads, the attribute catalog, the plugin registry and webhooks, each with
# its scope; the freshness status, which holds no tenant's data, with none
# (any valid token). The function routes methods and paths itself and
# answers anything else with a typed 404 or 405.
resource "aws_apigatewayv2_route" "query" {
  for_each = {
    "POST /v1/entities/search"                            = ["read"]
    "GET /v1/entities/{id}"                               = ["read"]
    "GET /v1/entities/{id}/attributes/{name}/history"     = ["read"]
    "POST /v1/attributes"                                 = ["admin"]
    "GET /v1/attributes/{name}"                           = ["read"]
    "PATCH /v1/attributes/{name}"                         = ["admin"]
    "GET /v1/analytics/attributes/{name}/stats"           = ["read"]
    "GET /v1/analytics/attributes/{name}/daily"           = ["read"]
    "GET /v1/plugins"                                     = ["read"]
    "GET /v1/status"                                      = []
    "PUT /v1/plugins/{name}"                              = ["admin"]
    "DELETE /v1/plugins/{name}"                           = ["admin"]
    "POST /v1/plugins/{name}/versions/{version}/activate" = ["admin"]
    "GET /v1/webhooks"                                    = ["admin"]
    "POST /v1/webhooks"                                   = ["admin"]
    "GET /v1/webhooks/{id}"                               = ["admin"]
    "DELETE /v1/webhooks/{id}"                            = ["admin"]
    "POST /v1/webhooks/{id}/test"                         = ["admin"]
    "GET /v1/webhooks/{id}/dead-letters"                  = ["admin"]
  }
  api_id               = aws_apigatewayv2_api.http.id
  route_key            = each.key
  target               = "integrations/${aws_apigatewayv2_integration.query_api.id}"
  authorization_type   = "JWT"
  authorizer_id        = aws_apigatewayv2_authorizer.jwt.id
  authorization_scopes = each.value
}
