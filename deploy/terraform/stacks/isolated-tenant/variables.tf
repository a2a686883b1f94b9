variable "deployment" {
  description = "Short name of the deployment (part of every resource name, with the tenant's)."
  type        = string
}

variable "tenant" {
  description = "The one tenant this stack serves (--single-tenant); it has its own network, cluster, database, cache, bucket, keys and worker pool."
  type        = string
}

variable "pool" {
  description = "The tenant's worker pool (its join tokens' --pool, its nodes' attache/pool label); empty: the tenant's name."
  type        = string
  default     = ""
}

variable "namespace" {
  description = "Kubernetes namespace of the control plane, whose service account attache-control-plane gets the workload identity (EKS Pod Identity); empty: attache-TENANT, the namespace of deploy/kubernetes/overlays/isolated-tenant (attache-acme)."
  type        = string
  default     = ""
}

variable "region" {
  description = "AWS region of everything (and the tenant's home region)."
  type        = string
}

variable "cidr" {
  description = "The VPC's IPv4 CIDR block."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones to spread subnets over (at least two)."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per zone."
  type        = bool
  default     = false
}

variable "peak_bots" {
  description = "Peak concurrent bots of the tenant."
  type        = number
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

variable "worker_instance_types" {
  description = "Instance types of worker nodes."
  type        = list(string)
  default     = ["c7i.2xlarge"]
}

variable "domain" {
  description = "DNS domain of the public names: api.DOMAIN and fleet.REGION.DOMAIN."
  type        = string
}

variable "zone_id" {
  description = "Route53 public hosted zone of the domain."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the cluster."
  type        = string
  default     = "1.33"
}

variable "admin_principal_arns" {
  description = "IAM principals given cluster-admin."
  type        = list(string)
  default     = []
}

variable "cluster_public_access_cidrs" {
  description = "Networks allowed to reach the Kubernetes API from the internet; empty keeps it private."
  type        = list(string)
  default     = []
}

variable "control_plane_nodes" {
  description = "Node group of the control plane's replicas (and the cluster's add-ons)."
  type = object({
    instance_types = list(string)
    min            = number
    desired        = number
    max            = number
  })
  default = {
    instance_types = ["m7i.large"]
    min            = 2
    desired        = 2
    max            = 4
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
  default     = 50
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

variable "cache_node_type" {
  description = "Redis node type."
  type        = string
  default     = "cache.t4g.medium"
}

variable "retention" {
  description = "The operator's default retention days per data class (kept when not named), days a deleted recording's version stays in the bucket, and days before recordings move to STANDARD_IA (0: never)."
  type = object({
    platform_defaults            = optional(map(number), {})
    deleted_object_grace_days    = optional(number, 7)
    infrequent_access_after_days = optional(number, 30)
  })
  default = {}
}

variable "extra_fleet_cidrs" {
  description = "Networks outside this VPC that run the tenant's edge workers (on-premises sites)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
