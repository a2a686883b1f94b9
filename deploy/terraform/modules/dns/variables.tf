variable "region" {
  description = "AWS region of the control plane (where its load balancer is)."
  type        = string
}

variable "name" {
  description = "Name of the load balancer and its target groups (the control plane region's name; load balancers allow 32 characters, target groups get a suffix)."
  type        = string
}

variable "zone_id" {
  description = "Route53 public hosted zone the names are created in (it must hold api_name and every fleet name)."
  type        = string
}

variable "api_name" {
  description = "DNS name of the API and console (HTTPS on 443, served by the control plane's port 8080)."
  type        = string
}

variable "fleet_names" {
  description = "DNS names workers dial (QUIC on UDP 8443); every one is also in the control plane's --fleet-names."
  type        = list(string)
}

variable "vpc_id" {
  description = "The control plane's VPC."
  type        = string
}

variable "vpc_cidr" {
  description = "The control plane VPC's CIDR (the load balancer's own addresses, which forward API traffic and run health checks)."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets the load balancer sits in."
  type        = list(string)
}

variable "control_plane_security_group_id" {
  description = "Security group of the control plane's nodes; the node ports are opened on it."
  type        = string
}

variable "control_plane_autoscaling_group" {
  description = "Auto Scaling group of the control plane's nodes (cluster module output), registered as targets."
  type        = string
}

variable "fleet_client_cidrs" {
  description = "Networks edge workers connect from (every region's NAT addresses, on-premises sites); only they reach the fleet port."
  type        = list(string)
  validation {
    condition     = length(var.fleet_client_cidrs) > 0 && alltrue([for c in var.fleet_client_cidrs : can(cidrhost(c, 0))])
    error_message = "fleet_client_cidrs: at least one IPv4 CIDR block."
  }
}

variable "http_node_port" {
  description = "Node port of the control plane's HTTP Service (port 8080); the Kubernetes Service must name the same."
  type        = number
  default     = 30080
}

variable "fleet_node_port" {
  description = "Node port of the control plane's fleet Service (UDP 8443); the Kubernetes Service must name the same."
  type        = number
  default     = 30443
}

variable "log_bucket" {
  description = "Bucket for the load balancer's access logs (the storage module's log_bucket in this region)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
