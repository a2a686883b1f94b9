output "primary_endpoint" {
  description = "Host name of the Redis primary (TLS on port 6379)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  description = "Redis port."
  value       = aws_elasticache_replication_group.this.port
}

output "auth_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth.arn
}

output "kms_key_arn" {
  description = "KMS key of the cache's data at rest and of its AUTH secret (reading the secret needs Decrypt on it)."
  value       = aws_kms_key.this.arn
}

output "url_template" {
  description = "ATTACHE_REDIS_URL with the token left out: put the secret's value in place of TOKEN. The token is letters, digits and '-' only (URL-safe), so it goes in as it is, with no percent-encoding."
  value       = "rediss://:TOKEN@${aws_elasticache_replication_group.this.primary_endpoint_address}:${aws_elasticache_replication_group.this.port}/0"
}
