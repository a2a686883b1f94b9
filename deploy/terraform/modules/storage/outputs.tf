output "buckets" {
  description = "Per bucket key: the bucket's name, ARN, region, its KMS key's ARN, and its tenant (empty for the region's shared bucket)."
  value = { for k, b in var.buckets : k => {
    name        = aws_s3_bucket.recordings[k].bucket
    arn         = aws_s3_bucket.recordings[k].arn
    region      = var.region
    kms_key_arn = aws_kms_key.bucket[k].arn
    tenant      = b.tenant
  } }
}

output "bucket_arns" {
  description = "ARNs of the region's recordings buckets (what the control plane's role may read and write)."
  value       = [for k in keys(var.buckets) : aws_s3_bucket.recordings[k].arn]
}

output "bucket_key_arns" {
  description = "ARNs of the buckets' KMS keys (what the control plane's role may generate data keys with and decrypt under, through S3)."
  value       = [for k in keys(var.buckets) : aws_kms_key.bucket[k].arn]
}

output "wrapping_key_arns" {
  description = "Per name (deployment, or a dedicated tenant): the ARN of the KMS key the key provider wraps tenant keys under (--kms-key-id, attache admin tenant-key)."
  value       = { for k, _ in var.wrapping_keys : k => aws_kms_key.wrapping[k].arn }
}

output "log_bucket" {
  description = "Name of the access-log bucket (load balancer logs go under lb/)."
  value       = aws_s3_bucket.logs.bucket
}
