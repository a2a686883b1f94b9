# Pure topology of one Attaché deployment: no provider, no resources.
# Everything here is arithmetic and naming that the provider-bound modules
# consume, so it can be validated and tested offline. Names follow the
# rules of tenant-policy/src/names.rs (tenants: 63 characters, regions and
# pools: 32, lowercase letters, digits and '-', starting with a letter).

terraform {
  required_version = ">= 1.9"
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
  description = "saas (shared workers and one bucket per region, dedicated tenants beside them) or isolated (one tenant, its own everything)."
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
    condition     = var.tenant == "" || can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.tenant))
    error_message = "tenant follows the tenant-name rules: 1-63 lowercase letters, digits and '-', starting with a letter."
  }
}

variable "pool" {
  description = "The isolated tenant's worker pool (its join tokens' --pool and its nodes' label); empty means the tenant's name. Unused for saas."
  type        = string
  default     = ""
  validation {
    condition     = var.pool == "" || (can(regex("^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", var.pool)) && var.pool != "shared")
    error_message = "pool follows the pool-name rules (1-32 lowercase letters, digits and '-', starting with a letter) and is not \"shared\"."
  }
}

variable "regions" {
  description = "Per region: peak concurrent bots on its shared workers (isolated: on the tenant's pool), and, for saas, the dedicated tenants homed there, keyed by pool name, with their tenant and their own peak."
  type = map(object({
    peak_bots = number
    pools = optional(map(object({
      tenant    = string
      peak_bots = number
    })), {})
  }))
  validation {
    condition     = length(var.regions) > 0 && alltrue([for r, v in var.regions : can(regex("^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", r)) && v.peak_bots >= 0])
    error_message = "regions: at least one, named like eu-west-1 (the region-name rules), with peak_bots >= 0."
  }
  validation {
    condition = alltrue(flatten([for r, v in var.regions : [
      for p, d in v.pools : can(regex("^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", p)) && p != "shared" && can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", d.tenant)) && d.peak_bots >= 0
    ]]))
    error_message = "pools: named by the pool-name rules and not \"shared\", each with a valid tenant name and peak_bots >= 0."
  }
  validation {
    condition     = length(flatten([for v in values(var.regions) : [for d in values(v.pools) : d.tenant]])) == length(distinct(flatten([for v in values(var.regions) : [for d in values(v.pools) : d.tenant]])))
    error_message = "a dedicated tenant has one pool, in its home region: no tenant appears twice."
  }
}

variable "domain" {
  description = "DNS domain of the deployment's public names (api.DOMAIN, fleet.REGION.DOMAIN); empty: names under PREFIX.internal."
  type        = string
  default     = ""
  validation {
    condition     = var.domain == "" || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a lowercase DNS name such as attache.example.com."
  }
}

variable "bots_per_worker" {
  description = "Bots one edge worker runs at once (its --capacity). One worker runs per node. 4, as the manifests' ATTACHE_CAPACITY and ScaledObject threshold: they move together."
  type        = number
  default     = 4
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

variable "min_workers_per_pool" {
  description = "Fewest workers a pool keeps, whatever its peak, so one lost node never leaves a region or a dedicated tenant without a worker."
  type        = number
  default     = 2
  validation {
    condition     = var.min_workers_per_pool >= 1 && var.min_workers_per_pool == floor(var.min_workers_per_pool)
    error_message = "min_workers_per_pool must be a whole number >= 1."
  }
}

variable "scale_out_factor" {
  description = "How far above its planned size a pool's node group may scale on queue depth (2 = twice the planned workers)."
  type        = number
  default     = 2
  validation {
    condition     = var.scale_out_factor >= 1 && var.scale_out_factor <= 10
    error_message = "scale_out_factor must be between 1 and 10."
  }
}

locals {
  isolated = var.mode == "isolated"
  pool     = var.pool != "" ? var.pool : var.tenant
  prefix   = local.isolated ? "${var.deployment}-${var.tenant}" : var.deployment
  suffix   = var.domain != "" ? var.domain : "${local.prefix}.internal"

  size = { for r, v in var.regions : r => merge(
    local.isolated ? {} : {
      shared = { tenant = "", peak_bots = v.peak_bots }
    },
    local.isolated ? {
      (local.pool) = { tenant = var.tenant, peak_bots = v.peak_bots }
    } : v.pools,
  ) }

  pools = { for r, ps in local.size : r => { for p, d in ps : p => {
    tenant    = d.tenant
    dedicated = d.tenant != ""
    peak_bots = d.peak_bots
    desired   = max(var.min_workers_per_pool, ceil(d.peak_bots * (1 + var.headroom) / var.bots_per_worker))
    min       = var.min_workers_per_pool
    max       = ceil(max(var.min_workers_per_pool, ceil(d.peak_bots * (1 + var.headroom) / var.bots_per_worker)) * var.scale_out_factor)
    # The join token of a shared worker names no pool; a dedicated one names its pool.
    join_pool  = d.tenant != "" ? p : ""
    node_group = "${local.prefix}-${r}-${p}"
    labels     = { "attache/role" = "edge-worker", "attache/pool" = p }
    taints     = [{ key = "attache/pool", value = p, effect = "NO_SCHEDULE" }]
  } } }

  tenant_bucket = { for r, v in var.regions : r => {
    for t in(local.isolated ? [var.tenant] : [for d in values(v.pools) : d.tenant]) : t => {
      name      = "${var.deployment}-${t}-${r}-recordings"
      key_alias = "alias/${var.deployment}-${t}-${r}-recordings"
      tenant    = t
    }
  } }

  buckets = { for r, _ in var.regions : r => merge(
    local.isolated ? {} : {
      shared = {
        name      = "${local.prefix}-${r}-recordings"
        key_alias = "alias/${local.prefix}-${r}-recordings"
        tenant    = ""
      }
    },
    local.tenant_bucket[r],
  ) }

  bucket_names = [for b in flatten([for r, bs in local.buckets : values(bs)]) : b.name]

  dedicated_tenants = local.isolated ? [var.tenant] : distinct(flatten([for v in values(var.regions) : [for d in values(v.pools) : d.tenant]]))

  wrapping_keys = merge(
    { deployment = "alias/${local.prefix}-key-provider" },
    local.isolated ? {} : { for t in local.dedicated_tenants : t => "alias/${var.deployment}-${t}-key-provider" },
  )

  regions = { for r, _ in var.regions : r => {
    name           = "${local.prefix}-${r}"
    fleet_endpoint = "fleet.${r}.${local.suffix}"
    bucket         = local.isolated ? local.buckets[r][var.tenant].name : local.buckets[r]["shared"].name
    buckets        = local.buckets[r]
    log_bucket     = "${local.prefix}-${r}-logs"
    pools          = local.pools[r]
    roles = {
      cluster       = "${local.prefix}-${r}-cluster"
      nodes         = "${local.prefix}-${r}-nodes"
      control_plane = "${local.prefix}-${r}-control-plane"
    }
  } }

  # Names AWS limits: buckets 63, node groups 63, IAM roles 64.
  long_names = concat(
    [for n in local.bucket_names : n if length(n) > 63],
    flatten([for r, v in local.regions : concat(
      [for n in values(v.roles) : n if length(n) > 64],
      [for p in values(v.pools) : p.node_group if length(p.node_group) > 63],
      length(v.log_bucket) > 63 ? [v.log_bucket] : [],
    )]),
  )
}

check "isolated_needs_a_tenant" {
  assert {
    condition     = var.mode == "saas" || var.tenant != ""
    error_message = "an isolated stack names its tenant."
  }
}

output "regions" {
  description = "Per region: its resource name, fleet endpoint, recordings bucket (the tenant's in an isolated stack), every bucket with its KMS key alias and tenant, the log bucket, IAM role names and the worker pools (size, node labels and taints, node group name, the pool its join tokens name)."
  value       = local.regions
  precondition {
    condition     = length(local.long_names) == 0
    error_message = "names too long for AWS (buckets and node groups 63 characters, IAM roles 64): choose a shorter deployment, tenant or pool name."
  }
  precondition {
    condition     = length(local.bucket_names) == length(distinct(local.bucket_names))
    error_message = "two buckets would have the same name."
  }
}

output "edge_workers" {
  description = "Edge workers to run per region, every pool of the region together."
  value       = { for r, ps in local.pools : r => sum([for p in values(ps) : p.desired]) }
}

output "bucket_names" {
  description = "The recordings bucket of each region (in an isolated stack, the tenant's)."
  value       = { for r, v in local.regions : r => v.bucket }
}

output "tenant_buckets" {
  description = "Per dedicated tenant: its bucket and the region it is in (what --s3-bucket-for-tenant names)."
  value       = merge([for r, ts in local.tenant_bucket : { for t, b in ts : t => { region = r, bucket = b.name } }]...)
}

output "fleet_endpoints" {
  description = "DNS name workers dial in each region."
  value       = { for r, v in local.regions : r => v.fleet_endpoint }
}

output "api_name" {
  description = "DNS name of the control plane's API and console."
  value       = "api.${local.suffix}"
}

output "prefix" {
  description = "Prefix of deployment-wide names (the database, the cache): the deployment, with the tenant for an isolated stack."
  value       = local.prefix
}

output "wrapping_keys" {
  description = "KMS key aliases the control plane's key provider wraps tenant keys under: deployment (--kms-key-id), and one per dedicated tenant (attache admin tenant-key)."
  value       = local.wrapping_keys
}

output "worker_capacity" {
  description = "Bots per worker: each worker's --capacity."
  value       = var.bots_per_worker
}
