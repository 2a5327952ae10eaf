output "api_endpoint" {
  description = "Base URL of the HTTP API."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "function_names" {
  description = "Lambda function names by role."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "plugin_bucket" {
  description = "S3 bucket holding tenant plugin modules."
  value       = aws_s3_bucket.plugins.bucket
}

output "warehouse_copy_role" {
  description = "IAM role Redshift assumes to COPY the loader's staged batches; associate it with the warehouse's namespace."
  value       = aws_iam_role.warehouse_copy.arn
}
