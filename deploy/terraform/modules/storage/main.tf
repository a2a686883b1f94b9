# A region's object storage: one recordings bucket for the region's shared
# tenants and one per dedicated tenant homed here, each encrypted under a
# KMS key of its own, versioned, closed to the public and to plain HTTP;
# plus, in the control plane's region, the KMS keys the key provider wraps
# tenant keys under. Objects are written and read by the control plane
# only (workers stream results to it); lifecycle rules come from the pure
# retention module.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:a key policy's Resource "*" is the key itself; the account administers it and grants use through IAM (the control plane's role)
  #checkov:skip=CKV_AWS_356:a key policy's Resource "*" is the key itself
  #checkov:skip=CKV_AWS_109:a key policy's Resource "*" is the key itself; the account root keeps administering it, as AWS's default key policy does
  statement {
    sid       = "Account"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }
}

resource "aws_kms_key" "bucket" {
  for_each                = var.buckets
  region                  = var.region
  description             = "Attaché recordings in ${each.value.name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.key_deletion_window_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = merge(var.tags, { "attache/tenant" = each.value.tenant, "attache/bucket" = each.value.name })
}

resource "aws_kms_alias" "bucket" {
  for_each      = var.buckets
  region        = var.region
  name          = each.value.key_alias
  target_key_id = aws_kms_key.bucket[each.key].key_id
}

resource "aws_kms_key" "wrapping" {
  for_each                = var.wrapping_keys
  region                  = var.region
  description             = "Attaché key provider: wraps ${each.key == "deployment" ? "the deployment's" : "tenant ${each.key}'s"} tenant keys"
  enable_key_rotation     = true
  deletion_window_in_days = var.key_deletion_window_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = merge(var.tags, { "attache/key-provider" = each.key })
}

resource "aws_kms_alias" "wrapping" {
  for_each      = var.wrapping_keys
  region        = var.region
  name          = each.value
  target_key_id = aws_kms_key.wrapping[each.key].key_id
}

resource "aws_s3_bucket" "recordings" {
  #checkov:skip=CKV_AWS_144:recordings stay in their region (data residency); a copy in another region would break it
  #checkov:skip=CKV2_AWS_62:nothing consumes bucket events: the control plane writes every object and knows when it did
  for_each      = var.buckets
  region        = var.region
  bucket        = each.value.name
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { "attache/tenant" = each.value.tenant })
}

resource "aws_s3_bucket_ownership_controls" "recordings" {
  for_each = var.buckets
  region   = var.region
  bucket   = aws_s3_bucket.recordings[each.key].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "recordings" {
  for_each                = var.buckets
  region                  = var.region
  bucket                  = aws_s3_bucket.recordings[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "recordings" {
  for_each = var.buckets
  region   = var.region
  bucket   = aws_s3_bucket.recordings[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "recordings" {
  for_each = var.buckets
  region   = var.region
  bucket   = aws_s3_bucket.recordings[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.bucket[each.key].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "recordings" {
  for_each      = var.buckets
  region        = var.region
  bucket        = aws_s3_bucket.recordings[each.key].id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/${each.value.name}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "recordings" {
  for_each = var.buckets
  region   = var.region
  bucket   = aws_s3_bucket.recordings[each.key].id

  # Versions the sweeper or an erasure deleted, the delete markers left,
  # and uploads never finished.
  rule {
    id     = "deleted-recordings-and-unfinished-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.lifecycle_rules.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = var.lifecycle_rules.abort_incomplete_upload_days
    }
  }

  # Older recordings to STANDARD_IA; the rule is kept, disabled, when none is wanted.
  rule {
    id     = "infrequent-access"
    status = var.lifecycle_rules.infrequent_access_after_days == null ? "Disabled" : "Enabled"
    filter {
      prefix = var.lifecycle_rules.object_prefix
    }
    transition {
      days          = coalesce(var.lifecycle_rules.infrequent_access_after_days, 30)
      storage_class = "STANDARD_IA"
    }
  }

  depends_on = [aws_s3_bucket_versioning.recordings]
}

data "aws_iam_policy_document" "recordings" {
  for_each = var.buckets
  statement {
    sid     = "TlsOnly"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.recordings[each.key].arn,
      "${aws_s3_bucket.recordings[each.key].arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  statement {
    sid     = "Tls12OrLater"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.recordings[each.key].arn,
      "${aws_s3_bucket.recordings[each.key].arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
  statement {
    sid       = "OnlyThisBucketsKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.recordings[each.key].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [aws_kms_key.bucket[each.key].arn]
    }
  }
}

resource "aws_s3_bucket_policy" "recordings" {
  for_each   = var.buckets
  region     = var.region
  bucket     = aws_s3_bucket.recordings[each.key].id
  policy     = data.aws_iam_policy_document.recordings[each.key].json
  depends_on = [aws_s3_bucket_public_access_block.recordings]
}

# Access logs. S3 server access logs and load balancer access logs can
# only be delivered to a bucket encrypted with S3-managed keys.

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_145:S3 server access logs and load balancer access logs can only be delivered to SSE-S3 buckets, not SSE-KMS
  #checkov:skip=CKV_AWS_18:this is the access-log bucket; logging its own access would log the logging
  #checkov:skip=CKV_AWS_144:logs stay in their region, with the data they describe
  #checkov:skip=CKV2_AWS_62:nothing consumes log-delivery events
  region        = var.region
  bucket        = var.log_bucket
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  region = var.region
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  region                  = var.region
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  region = var.region
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  region = var.region
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  region = var.region
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid     = "TlsOnly"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.logs.arn,
      "${aws_s3_bucket.logs.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3/*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
  # Network load balancer access logs are delivered by the log delivery service.
  statement {
    sid       = "LoadBalancerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/lb/AWSLogs/${data.aws_caller_identity.current.account_id}/*"]
    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
  statement {
    sid       = "LoadBalancerAccessLogsAcl"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.logs.arn]
    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  region     = var.region
  bucket     = aws_s3_bucket.logs.id
  policy     = data.aws_iam_policy_document.logs.json
  depends_on = [aws_s3_bucket_public_access_block.logs]
}
