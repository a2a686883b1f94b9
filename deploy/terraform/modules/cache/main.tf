# Redis for the control plane's replicas: TLS in transit (rediss://),
# encrypted at rest, an AUTH token kept in Secrets Manager, and port 6379
# open to the control plane's nodes only. PostgreSQL stays the truth; with
# Redis down, replicas serve from it.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:a key policy's Resource "*" is the key itself; the account administers it and grants use through IAM
  #checkov:skip=CKV_AWS_356:a key policy's Resource "*" is the key itself
  #checkov:skip=CKV_AWS_109:a key policy's Resource "*" is the key itself; the account root keeps administering it, as AWS's default key policy does
  statement {
    sid       = "Account"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "this" {
  region              = var.region
  description         = "${var.name}: Redis at rest and its AUTH token"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
  tags                = var.tags
}

resource "aws_kms_alias" "this" {
  region        = var.region
  name          = "alias/${var.name}-cache"
  target_key_id = aws_kms_key.this.key_id
}

# ElastiCache AUTH tokens: 16-128 printable characters, without @, " or /.
resource "random_password" "auth" {
  length  = 64
  special = true
  # Letters, digits and '-' only: the token goes into ATTACHE_REDIS_URL
  # (rediss://:TOKEN@HOST:6379/0) as it is, with nothing to percent-encode.
  override_special = "-"
}

resource "aws_secretsmanager_secret" "auth" {
  #checkov:skip=CKV2_AWS_57:the AUTH token is rotated by changing it on the replication group (auth_token_update_strategy ROTATE, then SET) in a Terraform apply; a Secrets Manager rotation function would change the secret without the cache
  region      = var.region
  name        = "${var.name}/redis-auth"
  description = "AUTH token of the ${var.name} Redis (ATTACHE_REDIS_URL is rediss://:TOKEN@HOST:6379)"
  kms_key_id  = aws_kms_key.this.arn
  tags        = var.tags
}

resource "aws_secretsmanager_secret_version" "auth" {
  region        = var.region
  secret_id     = aws_secretsmanager_secret.auth.id
  secret_string = random_password.auth.result
}

resource "aws_elasticache_subnet_group" "this" {
  region     = var.region
  name       = var.name
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "this" {
  region      = var.region
  name        = "${var.name}-cache"
  description = "Redis: the control plane only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-cache" })
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count                        = length(var.client_security_group_ids)
  region                       = var.region
  security_group_id            = aws_security_group.this.id
  description                  = "Redis (TLS) from the control plane"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = var.client_security_group_ids[count.index]
}

resource "aws_elasticache_parameter_group" "this" {
  region = var.region
  name   = "${var.name}-redis7"
  family = "redis7"
  # Streams and pub/sub only; nothing may be evicted from the dispatch queue.
  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
  tags = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  region                     = var.region
  replication_group_id       = var.name
  description                = "Attaché control plane: dispatch queue, live events, rate limits"
  engine                     = "redis"
  engine_version             = var.engine_version
  node_type                  = var.node_type
  num_cache_clusters         = 1 + var.replicas
  automatic_failover_enabled = true
  multi_az_enabled           = true
  port                       = 6379
  parameter_group_name       = aws_elasticache_parameter_group.this.name
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.this.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.this.arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = random_password.auth.result
  auth_token_update_strategy = "ROTATE"
  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = "03:00-04:00"
  maintenance_window         = "sun:04:30-sun:05:30"
  auto_minor_version_upgrade = true
  apply_immediately          = false
  tags                       = var.tags
}
