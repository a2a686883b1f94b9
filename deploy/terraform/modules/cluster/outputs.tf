output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "endpoint" {
  description = "The Kubernetes API's URL."
  value       = aws_eks_cluster.this.endpoint
}

output "certificate_authority" {
  description = "Base64 PEM of the cluster's certificate authority."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "The security group EKS made for the cluster; every node carries it."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_role_arn" {
  description = "ARN of the nodes' IAM role (joins the cluster, pulls images, runs the VPC CNI; nothing else)."
  value       = aws_iam_role.nodes.arn
}

output "node_volume_key_arn" {
  description = "KMS key node root volumes are encrypted under."
  value       = aws_kms_key.this.arn
}

output "control_plane_autoscaling_group" {
  description = "Auto Scaling group of the control plane's nodes (the load balancer's targets; a managed node group has one); null outside the control plane's region."
  value       = local.control_plane ? aws_eks_node_group.system.resources[0].autoscaling_groups[0].name : null
}

output "control_plane_identity" {
  description = "The control plane's workload identity (null outside its region): the IAM role's ARN, and the namespace and service account its pods run as."
  value = local.control_plane ? {
    role_arn        = aws_iam_role.control_plane[0].arn
    namespace       = var.control_plane.namespace
    service_account = var.control_plane.service_account
  } : null
}
