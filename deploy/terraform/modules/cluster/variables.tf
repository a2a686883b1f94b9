variable "region" {
  description = "AWS region of the cluster."
  type        = string
}

variable "name" {
  description = "Cluster name (the topology module's per-region name)."
  type        = string
}

variable "role_names" {
  description = "IAM role names from the topology module: cluster (the EKS service role), nodes (every node), control_plane (the control plane's workload identity)."
  type = object({
    cluster       = string
    nodes         = string
    control_plane = string
  })
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the cluster."
  type        = string
  default     = "1.33"
}

variable "vpc_id" {
  description = "The VPC the cluster lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the cluster's network interfaces and its nodes."
  type        = list(string)
}

variable "public_access_cidrs" {
  description = "Networks allowed to reach the Kubernetes API from the internet; empty keeps the API private to the VPC (reach it through a VPN or a bastion)."
  type        = list(string)
  default     = []
  validation {
    condition     = !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "public_access_cidrs must not open the Kubernetes API to the whole internet."
  }
}

variable "admin_principal_arns" {
  description = "IAM principals (operators' roles) given cluster-admin through EKS access entries."
  type        = list(string)
  default     = []
}

variable "system_nodes" {
  description = "The node group for cluster add-ons (CoreDNS and the like), and, in the control plane's region, for the control plane's replicas."
  type = object({
    instance_types = list(string)
    min            = number
    desired        = number
    max            = number
    disk_gb        = optional(number, 50)
  })
  default = {
    instance_types = ["m7i.large"]
    min            = 2
    desired        = 2
    max            = 4
  }
}

variable "control_plane" {
  description = "Set in the control plane's region only (null elsewhere): the security group of its nodes, its Kubernetes namespace and service account, and what its workload identity may use: recordings buckets (object access), their KMS keys (through S3 only), the key provider's wrapping keys, and the database and cache secrets with their KMS keys."
  type = object({
    security_group_id = string
    namespace         = optional(string, "attache")
    service_account   = optional(string, "attache-control-plane")
    bucket_arns       = list(string)
    bucket_key_arns   = list(string)
    wrapping_key_arns = list(string)
    secret_arns       = list(string)
    secret_key_arns   = list(string)
  })
  default = null
}

variable "log_retention_days" {
  description = "Days the cluster's control plane logs are kept in CloudWatch."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
