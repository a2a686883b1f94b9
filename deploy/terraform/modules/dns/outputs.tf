output "api_url" {
  description = "The control plane's public URL (--public-url)."
  value       = "https://${aws_route53_record.api.fqdn}"
}

output "fleet_names" {
  description = "The fleet names created (--fleet-names, and each region's workers' ATTACHE_CONTROL_PLANE host)."
  value       = [for n in var.fleet_names : aws_route53_record.fleet[n].fqdn]
}

output "load_balancer_dns_name" {
  description = "The load balancer's own DNS name."
  value       = aws_lb.control_plane.dns_name
}

output "node_ports" {
  description = "Node ports the control plane's Kubernetes Services must use: http (its port 8080) and fleet (UDP 8443)."
  value       = { http = var.http_node_port, fleet = var.fleet_node_port }
}
