variable "region" {
  description = "AWS region of the database (the control plane's)."
  type        = string
}

variable "name" {
  description = "Identifier of the database instance and its companions (the topology module's prefix)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,58}[a-z0-9]$", var.name))
    error_message = "name must be a valid RDS identifier of at most 60 characters."
  }
}

variable "vpc_id" {
  description = "The VPC the database lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets, in at least two zones, for the database."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids: at least two (RDS needs two zones)."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect (the control plane's nodes); nothing else reaches port 5432."
  type        = list(string)
}

variable "engine_version" {
  description = "PostgreSQL major version (the migrations run on PostgreSQL 15 and later)."
  type        = string
  default     = "17"
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m7g.large"
}

variable "allocated_storage_gb" {
  description = "Storage to start with, in GiB; it grows on its own up to max_allocated_storage_gb."
  type        = number
  default     = 100
}

variable "max_allocated_storage_gb" {
  description = "Largest storage autoscaling may grow to, in GiB."
  type        = number
  default     = 1000
}

variable "multi_az" {
  description = "A synchronous standby in another zone that takes over on failure (the switch between a test stack and production)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days automated backups and point-in-time recovery reach back. An erasure destroys keys, so backups older than it cannot be read back into personal data."
  type        = number
  default     = 14
  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 1 and 35 (RDS's limits)."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance (turn off only to tear a test stack down)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days the database's logs are kept in CloudWatch."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
