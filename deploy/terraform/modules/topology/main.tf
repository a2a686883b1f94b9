# Pure topology of one Attaché deployment: no provider, no resources.
# Everything here is arithmetic and naming that the provider-bound modules
# consume, so it can be validated and tested offline.

terraform {
  required_version = ">= 1.6"
}

variable "deployment" {
  description = "Short name of the deployment (part of every resource name)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.deployment))
    error_message = "deployment: 3-22 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "mode" {
  description = "saas (shared workers and one bucket per region) or isolated (one tenant, its own everything)."
  type        = string
  default     = "saas"
  validation {
    condition     = contains(["saas", "isolated"], var.mode)
    error_message = "mode must be saas or isolated."
  }
}

variable "tenant" {
  description = "The tenant an isolated stack serves; empty for saas."
  type        = string
  default     = ""
  validation {
    condition     = var.tenant == "" || can(regex("^[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.tenant))
    error_message = "tenant follows the tenant-name rules: lowercase letters, digits and '-'."
  }
}

variable "regions" {
  description = "Per region: peak concurrent bots to plan for."
  type = map(object({
    peak_bots = number
  }))
  validation {
    condition     = length(var.regions) > 0 && alltrue([for r, v in var.regions : can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", r)) && v.peak_bots >= 0])
    error_message = "regions: at least one, named like eu-west-1, with peak_bots >= 0."
  }
}

variable "bots_per_worker" {
  description = "Bots one edge worker runs at once (its --capacity)."
  type        = number
  default     = 8
  validation {
    condition     = var.bots_per_worker >= 1 && var.bots_per_worker == floor(var.bots_per_worker)
    error_message = "bots_per_worker must be a whole number >= 1."
  }
}

variable "headroom" {
  description = "Spare capacity as a fraction of peak (0.25 = 25%), so a lost worker's bots have somewhere to go."
  type        = number
  default     = 0.25
  validation {
    condition     = var.headroom >= 0 && var.headroom <= 2
    error_message = "headroom must be between 0 and 2."
  }
}

variable "min_workers_per_region" {
  type    = number
  default = 2
}

locals {
  prefix = var.mode == "isolated" ? "${var.deployment}-${var.tenant}" : var.deployment

  workers = {
    for r, v in var.regions : r => max(
      var.min_workers_per_region,
      ceil(v.peak_bots * (1 + var.headroom) / var.bots_per_worker)
    )
  }
}

check "isolated_needs_a_tenant" {
  assert {
    condition     = var.mode == "saas" || var.tenant != ""
    error_message = "an isolated stack names its tenant."
  }
}

output "edge_workers" {
  description = "Edge workers to run per region."
  value       = local.workers
}

output "bucket_names" {
  description = "Object storage bucket per region (S3 names: 3-63 chars)."
  value       = { for r, _ in var.regions : r => substr("${local.prefix}-${r}-recordings", 0, 63) }
}

output "fleet_endpoints" {
  description = "DNS name workers dial in each region."
  value       = { for r, _ in var.regions : r => "fleet.${r}.${local.prefix}.internal" }
}

output "worker_capacity" {
  value = var.bots_per_worker
}
