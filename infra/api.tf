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

resource "aws_apigatewayv2_route" "post_telemetry" {
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "POST /v1/telemetry"
  target             = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.jwt.id
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

# Entity reads, the attribute catalog and the plugin registry: the function routes methods and
# paths itself and answers anything else with a typed 404 or 405.
resource "aws_apigatewayv2_route" "query" {
  for_each = toset([
    "POST /v1/entities/search",
    "GET /v1/entities/{id}",
    "GET /v1/entities/{id}/attributes/{name}/history",
    "POST /v1/attributes",
    "GET /v1/attributes/{name}",
    "PATCH /v1/attributes/{name}",
    "GET /v1/analytics/attributes/{name}/stats",
    "ANY /v1/plugins",
    "ANY /v1/plugins/{proxy+}",
  ])
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.value
  target             = "integrations/${aws_apigatewayv2_integration.query_api.id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.jwt.id
}

resource "aws_lambda_permission" "api_query" {
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["query-api"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}

moved {
  from = aws_apigatewayv2_route.plugins
  to   = aws_apigatewayv2_route.query
}
