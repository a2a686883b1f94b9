# Pure: the product's retention rules as the object store sees them. No
# provider, no resources.
#
# The control plane's sweeper is what deletes a tenant's recordings
# (tenant-policy/src/retention.rs decides, control-plane/src/retention.rs
# deletes): per tenant and per class, after the platform's default, and
# never while a legal hold stands. A bucket cannot see tenants' policies or
# holds, so its lifecycle never expires a current recording; it removes what
# the sweeper leaves behind: the old versions of objects the sweeper or an
# erasure deleted, delete markers, and unfinished uploads.

terraform {
  required_version = ">= 1.9"
}

variable "platform_defaults" {
  description = "The operator's default retention in days per data class (what `attache admin retention-defaults --class CLASS --days N` stores); a class not named is kept, as in the product, where no class has a default until the operator sets one."
  type        = map(number)
  default     = {}
  validation {
    condition     = alltrue([for c in keys(var.platform_defaults) : contains(["recordings", "transcripts", "chat", "participants", "bot_metadata", "webhook_deliveries"], c)])
    error_message = "platform_defaults: classes are recordings, transcripts, chat, participants, bot_metadata and webhook_deliveries."
  }
  validation {
    condition     = alltrue([for d in values(var.platform_defaults) : d >= 1 && d <= 3650 && d == floor(d)])
    error_message = "platform_defaults: whole days between 1 and 3650 (MAX_RETENTION_DAYS)."
  }
}

variable "deleted_object_grace_days" {
  description = "Days a recording's object version stays in the versioned bucket after the sweeper or an erasure deleted it (a window to undo an operator's mistake), before the bucket removes it for good."
  type        = number
  default     = 7
  validation {
    condition     = var.deleted_object_grace_days >= 1 && var.deleted_object_grace_days <= 30 && var.deleted_object_grace_days == floor(var.deleted_object_grace_days)
    error_message = "deleted_object_grace_days: whole days between 1 and 30; deleted data must not outlive its deletion for long."
  }
}

variable "infrequent_access_after_days" {
  description = "Days after which a stored recording moves to the STANDARD_IA storage class (downloads still work; reads cost a retrieval fee); null keeps recordings in STANDARD."
  type        = number
  default     = 30
  nullable    = true
  validation {
    condition     = var.infrequent_access_after_days == null || try(var.infrequent_access_after_days >= 30 && var.infrequent_access_after_days == floor(var.infrequent_access_after_days), false)
    error_message = "infrequent_access_after_days: S3 moves objects to STANDARD_IA after 30 days at the earliest."
  }
}

locals {
  # DataClass::ALL, in the order a sweep deletes them.
  classes  = ["recordings", "transcripts", "chat", "participants", "webhook_deliveries", "bot_metadata"]
  max_days = 3650

  defaults = { for c in local.classes : c => lookup(var.platform_defaults, c, null) }

  # Every recording object lives under tenants/<tenant>/bots/<bot>/ (control-plane/src/objects.rs).
  object_prefix = "tenants/"

  # A transition only pays off for objects that live past it.
  transition = (
    var.infrequent_access_after_days != null &&
    (local.defaults["recordings"] == null ? true : local.defaults["recordings"] > coalesce(var.infrequent_access_after_days, 0))
  ) ? var.infrequent_access_after_days : null
}

check "infrequent_access_outlives_the_default" {
  assert {
    condition     = var.infrequent_access_after_days == null || local.defaults["recordings"] == null || coalesce(local.defaults["recordings"], 0) > coalesce(var.infrequent_access_after_days, 0)
    error_message = "recordings are deleted by default before they would move to STANDARD_IA; no transition is configured."
  }
}

output "classes" {
  description = "The data classes with a retention of their own, in the order a sweep deletes them."
  value       = local.classes
}

output "max_days" {
  description = "The longest retention a tenant or the operator may set (MAX_RETENTION_DAYS)."
  value       = local.max_days
}

output "defaults" {
  description = "Platform default per class in days; null means kept unless a tenant sets a rule."
  value       = local.defaults
}

output "admin_commands" {
  description = "The `attache admin retention-defaults` calls that store these defaults in the deployment's database (run once against it)."
  value       = [for c in local.classes : "attache admin retention-defaults --class ${c} --days ${local.defaults[c]}" if local.defaults[c] != null]
}

output "lifecycle" {
  description = "What a recordings bucket's lifecycle does: object prefix, days before a deleted version is removed, days before an unfinished upload is aborted, days before the STANDARD_IA transition (null: none), and whether current objects ever expire (never: the sweeper decides)."
  value = {
    object_prefix                = local.object_prefix
    noncurrent_version_days      = var.deleted_object_grace_days
    abort_incomplete_upload_days = 1
    infrequent_access_after_days = local.transition
    expire_current_objects       = false
  }
}
