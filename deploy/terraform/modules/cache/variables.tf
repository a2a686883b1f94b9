variable "region" {
  description = "AWS region of the cache (the control plane's)."
  type        = string
}

variable "name" {
  description = "Replication group id (the topology module's prefix); ElastiCache allows 40 characters."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 1-40 lowercase letters, digits and single '-', starting with a letter."
  }
}

variable "vpc_id" {
  description = "The VPC the cache lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the cache nodes."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect (the control plane's nodes); nothing else reaches port 6379."
  type        = list(string)
}

variable "node_type" {
  description = "ElastiCache node type. Redis carries the dispatch queue, live-event fan-out and rate limits, not data at rest: small nodes suffice."
  type        = string
  default     = "cache.m7g.large"
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "replicas" {
  description = "Replicas beside the primary, in other zones; one takes over when the primary fails."
  type        = number
  default     = 1
  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5
    error_message = "replicas must be between 1 and 5 (automatic failover needs one)."
  }
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots kept (0: none; PostgreSQL is the truth, Redis can start empty)."
  type        = number
  default     = 1
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
