output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.this.id
}

output "cidr" {
  description = "The VPC's CIDR block."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone: nodes, database, cache."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone: NAT gateways and the control plane's load balancer."
  value       = aws_subnet.public[*].id
}

output "nat_public_ips" {
  description = "Addresses workers' traffic leaves from (for allow-lists at meeting platforms or webhook receivers)."
  value       = aws_eip.nat[*].public_ip
}

output "control_plane_security_group_id" {
  description = "Security group of the control plane's nodes: the only clients the database and the cache accept."
  value       = aws_security_group.control_plane.id
}

output "workers_security_group_id" {
  description = "Security group of the edge workers' nodes."
  value       = aws_security_group.workers.id
}
