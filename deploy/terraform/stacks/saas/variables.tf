variable "deployment" {
  description = "Short name of the deployment (part of every resource name)."
  type        = string
}

variable "home_region" {
  description = "The region the control plane runs in: its cluster's control-plane nodes, PostgreSQL, Redis, the key provider's KMS keys and the public load balancer."
  type        = string
  validation {
    condition     = contains(keys(var.regions), var.home_region)
    error_message = "home_region must be one of the regions."
  }
}

variable "regions" {
  description = "Every region the deployment serves, by AWS region name (which is also the product's region name): its VPC CIDR and zones, the peak concurrent bots of its shared workers, the dedicated tenants homed there (keyed by pool, with the tenant and its own peak), whether one NAT gateway suffices, and the worker instance types."
  type = map(object({
    cidr               = string
    availability_zones = list(string)
    peak_bots          = number
    pools = optional(map(object({
      tenant    = string
      peak_bots = number
    })), {})
    single_nat_gateway    = optional(bool, false)
    worker_instance_types = optional(list(string), ["c7i.2xlarge"])
  }))
}

variable "domain" {
  description = "DNS domain of the public names: api.DOMAIN, and fleet.REGION.DOMAIN for each region's workers."
  type        = string
}

variable "zone_id" {
  description = "Route53 public hosted zone of the domain."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the control plane in the home region's cluster, whose service account attache-control-plane gets the workload identity (EKS Pod Identity): the namespace of deploy/kubernetes/overlays/shared-region."
  type        = string
  default     = "attache"
}

variable "bots_per_worker" {
  description = "Bots one edge worker (one node) runs at once: its ATTACHE_CAPACITY. It moves together with the manifests' ATTACHE_CAPACITY (deploy/kubernetes/base/edge-worker/kustomization.yaml) and the ScaledObject's threshold, both 4, which the worker pod's resource requests are sized for."
  type        = number
  default     = 4
}

variable "worker_token_ttl_minutes" {
  description = "Minutes the join token of token_command stays valid: the window in which new worker pods may enroll (enrolled ones need no token). 43200 is 30 days."
  type        = number
  default     = 43200
}

variable "headroom" {
  description = "Spare worker capacity as a fraction of peak bots."
  type        = number
  default     = 0.25
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of every region's cluster."
  type        = string
  default     = "1.33"
}

variable "admin_principal_arns" {
  description = "IAM principals given cluster-admin on every cluster."
  type        = list(string)
  default     = []
}

variable "cluster_public_access_cidrs" {
  description = "Networks allowed to reach the Kubernetes APIs from the internet; empty keeps them private."
  type        = list(string)
  default     = []
}

variable "control_plane_nodes" {
  description = "Node group of the control plane's replicas (and the home cluster's add-ons)."
  type = object({
    instance_types = list(string)
    min            = number
    desired        = number
    max            = number
  })
  default = {
    instance_types = ["m7i.xlarge"]
    min            = 3
    desired        = 3
    max            = 6
  }
}

variable "database_instance_class" {
  description = "PostgreSQL instance class."
  type        = string
  default     = "db.m7g.large"
}

variable "database_storage_gb" {
  description = "PostgreSQL storage to start with, in GiB (it grows on its own)."
  type        = number
  default     = 100
}

variable "database_multi_az" {
  description = "A standby PostgreSQL in another zone that takes over on failure."
  type        = bool
  default     = true
}

variable "database_backup_retention_days" {
  description = "Days of PostgreSQL backups and point-in-time recovery."
  type        = number
  default     = 14
}

variable "cache" {
  description = "Redis: node type and replicas."
  type = object({
    node_type = optional(string, "cache.m7g.large")
    replicas  = optional(number, 1)
  })
  default = {}
}

variable "retention" {
  description = "The operator's default retention days per data class (kept when not named), days a deleted recording's version stays in its bucket, and days before recordings move to STANDARD_IA (0: never)."
  type = object({
    platform_defaults            = optional(map(number), {})
    deleted_object_grace_days    = optional(number, 7)
    infrequent_access_after_days = optional(number, 30)
  })
  default = {}
}

variable "extra_fleet_cidrs" {
  description = "Networks outside these regions that run edge workers (on-premises sites); every region's NAT addresses are allowed already."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
