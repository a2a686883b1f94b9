variable "region" {
  description = "AWS region of the workers."
  type        = string
}

variable "cluster_name" {
  description = "The region's EKS cluster (cluster module output)."
  type        = string
}

variable "node_role_arn" {
  description = "The nodes' IAM role (cluster module output): workers get no other AWS permission."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for worker nodes; they leave through NAT."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of worker nodes: the cluster's, and the workers' own from the network module."
  type        = list(string)
}

variable "volume_key_arn" {
  description = "KMS key worker root volumes (and the spool of unacknowledged results on them) are encrypted under."
  type        = string
}

variable "pools" {
  description = "The region's worker pools, from the topology module: per pool, its tenant (empty for shared), node counts (min, desired, max), node group name, node labels and taints, and the pool its join tokens name (empty for shared)."
  type = map(object({
    tenant     = string
    min        = number
    desired    = number
    max        = number
    node_group = string
    join_pool  = string
    labels     = map(string)
    taints = list(object({
      key    = string
      value  = string
      effect = string
    }))
  }))
  validation {
    condition     = alltrue([for p in values(var.pools) : p.min >= 1 && p.min <= p.desired && p.desired <= p.max])
    error_message = "pools: 1 <= min <= desired <= max."
  }
}

variable "capacity" {
  description = "Bots each worker runs at once (its --capacity, the topology module's worker_capacity); one worker per node."
  type        = number
}

variable "token_ttl_minutes" {
  description = "Minutes a pool's join token stays valid (worker-token --ttl-minutes): the window in which new pods of the autoscaled set may enroll. Enrolled workers need no token; once it expires, issue a new one before the set grows past the pods already enrolled. 43200 is 30 days."
  type        = number
  default     = 43200
  validation {
    condition     = var.token_ttl_minutes >= 60 && var.token_ttl_minutes == floor(var.token_ttl_minutes)
    error_message = "token_ttl_minutes must be a whole number of minutes, at least 60."
  }
}

variable "fleet_endpoint" {
  description = "DNS name workers dial (the control plane's fleet port is 8443, QUIC over UDP)."
  type        = string
}

variable "fleet_port" {
  description = "The control plane's fleet port."
  type        = number
  default     = 8443
}

variable "instance_types" {
  description = "Instance types of worker nodes. A bot is a headless Chromium context capturing and encoding audio (about a tenth of a core and a few hundred MiB each), plus the local transcription engine when used: size for capacity bots per node."
  type        = list(string)
  default     = ["c7i.2xlarge"]
}

variable "disk_gb" {
  description = "Root volume of a worker node in GiB (images, Chromium profiles, the result spool)."
  type        = number
  default     = 100
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
