environment        = "staging"
region             = "us-east-1"
subnet_ids         = ["subnet-replace-me-a", "subnet-replace-me-b"]
security_group_ids = ["sg-replace-me"]
jwt_issuer         = "https://auth.example.com/"
jwt_audience       = ["atlas-staging"]
