# A region's edge workers: one EKS node group per pool (the region's
# shared pool, and each dedicated tenant's), sized by the topology module,
# labelled attache/pool=POOL and tainted so only that pool's workers run
# there. One worker per node; it dials the control plane's fleet port out
# through NAT, so nothing reaches the nodes from outside.

resource "aws_launch_template" "pool" {
  for_each               = var.pools
  region                 = var.region
  name                   = each.value.node_group
  update_default_version = true
  vpc_security_group_ids = var.security_group_ids

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.disk_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.volume_key_arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, each.value.labels, { Name = each.value.node_group })
  }

  tags = var.tags
}

resource "aws_eks_node_group" "pool" {
  for_each        = var.pools
  region          = var.region
  cluster_name    = var.cluster_name
  node_group_name = each.value.node_group
  node_role_arn   = var.node_role_arn
  subnet_ids      = var.subnet_ids
  instance_types  = var.instance_types
  ami_type        = "AL2023_x86_64_STANDARD"

  scaling_config {
    min_size     = each.value.min
    desired_size = each.value.desired
    max_size     = each.value.max
  }

  # Workers drain (their bots in calls finish, up to --drain-timeout) before a node goes.
  update_config {
    max_unavailable_percentage = 10
  }

  launch_template {
    id      = aws_launch_template.pool[each.key].id
    version = aws_launch_template.pool[each.key].latest_version
  }

  labels = each.value.labels

  dynamic "taint" {
    for_each = each.value.taints
    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  tags = merge(var.tags, {
    "attache/pool"                                               = each.key
    "attache/tenant"                                             = each.value.tenant
    "k8s.io/cluster-autoscaler/enabled"                          = "true"
    "k8s.io/cluster-autoscaler/${var.cluster_name}"              = "owned"
    "k8s.io/cluster-autoscaler/node-template/label/attache/pool" = each.key
  })

  # The autoscaler moves the size with queue depth; Terraform keeps the bounds.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }
}
