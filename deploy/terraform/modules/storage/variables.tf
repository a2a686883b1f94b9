variable "region" {
  description = "AWS region the buckets and keys are in."
  type        = string
}

variable "buckets" {
  description = "Recordings buckets of the region, from the topology module: per key, the bucket name, its KMS key alias, and the tenant it belongs to (empty for the region's shared bucket)."
  type = map(object({
    name      = string
    key_alias = string
    tenant    = string
  }))
  validation {
    condition     = length(var.buckets) > 0 && alltrue([for b in values(var.buckets) : can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", b.name)) && startswith(b.key_alias, "alias/")])
    error_message = "buckets: at least one; S3 names of 3-63 lowercase letters, digits and '-'; key aliases starting with alias/."
  }
}

variable "log_bucket" {
  description = "Name of the region's bucket for S3 server access logs and the load balancer's access logs."
  type        = string
}

variable "log_retention_days" {
  description = "Days access logs are kept."
  type        = number
  default     = 365
}

variable "lifecycle_rules" {
  description = "The retention module's lifecycle output: the recordings' object prefix, days before a deleted version is removed, days before an unfinished upload is aborted, days before STANDARD_IA (null: never)."
  type = object({
    object_prefix                = string
    noncurrent_version_days      = number
    abort_incomplete_upload_days = number
    infrequent_access_after_days = number
    expire_current_objects       = bool
  })
}

variable "wrapping_keys" {
  description = "KMS keys the control plane's key provider wraps tenant keys under, created in this region: per name (deployment, or a dedicated tenant), its alias. Empty outside the control plane's region."
  type        = map(string)
  default     = {}
}

variable "key_deletion_window_days" {
  description = "Days a KMS key waits between being scheduled for deletion and being deleted (the last moment an erasure can be undone)."
  type        = number
  default     = 30
  validation {
    condition     = var.key_deletion_window_days >= 7 && var.key_deletion_window_days <= 30
    error_message = "key_deletion_window_days must be between 7 and 30 (AWS's limits)."
  }
}

variable "force_destroy" {
  description = "Let Terraform delete buckets that still hold recordings (test stacks only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
