variable "region" {
  description = "AWS region of this network (every resource sets it, so one provider serves every region)."
  type        = string
}

variable "name" {
  description = "Name of the network's resources (the topology module's per-region name)."
  type        = string
}

variable "cidr" {
  description = "The VPC's IPv4 CIDR block; a /16 leaves room for pods (the VPC CNI gives each pod a VPC address)."
  type        = string
  validation {
    condition     = can(cidrhost(var.cidr, 0)) && tonumber(split("/", var.cidr)[1]) <= 20
    error_message = "cidr must be an IPv4 CIDR block of /20 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones (names, such as eu-west-1a) to spread subnets and NAT gateways over; named, so the layout never changes when AWS adds a zone."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones: 2 to 6 distinct zones (EKS and multi-AZ databases need two)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC instead of one per zone: cheaper, but a zone's outage cuts every worker's way out."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "Days VPC flow logs are kept in CloudWatch."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
