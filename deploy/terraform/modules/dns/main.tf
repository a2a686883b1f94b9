# The control plane's public names and what answers for them: a network
# load balancer in the control plane's region with a TLS listener for the
# API and console (443 → node port of HTTP 8080, certificate from ACM) and
# a UDP listener for the fleet port (8443 → node port of the QUIC listener,
# passed through: the control plane and workers speak mutual TLS end to
# end), and Route53 records for api.DOMAIN and every fleet name.

resource "aws_acm_certificate" "api" {
  region            = var.region
  domain_name       = var.api_name
  validation_method = "DNS"
  tags              = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "api_validation" {
  for_each = { for o in aws_acm_certificate.api.domain_validation_options : o.domain_name => o }
  zone_id  = var.zone_id
  name     = each.value.resource_record_name
  type     = each.value.resource_record_type
  records  = [each.value.resource_record_value]
  ttl      = 300
}

resource "aws_acm_certificate_validation" "api" {
  region                  = var.region
  certificate_arn         = aws_acm_certificate.api.arn
  validation_record_fqdns = [for r in aws_route53_record.api_validation : r.fqdn]
}

resource "aws_lb" "control_plane" {
  region                           = var.region
  name                             = substr(var.name, 0, 32)
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = var.public_subnet_ids
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true

  access_logs {
    bucket  = var.log_bucket
    prefix  = "lb"
    enabled = true
  }

  tags = var.tags
}

resource "aws_lb_target_group" "api" {
  region      = var.region
  name        = "${substr(var.name, 0, 28)}-api"
  port        = var.http_node_port
  protocol    = "TCP"
  target_type = "instance"
  vpc_id      = var.vpc_id
  health_check {
    protocol = "HTTP"
    port     = tostring(var.http_node_port)
    path     = "/readyz"
  }
  tags = var.tags
}

resource "aws_lb_target_group" "fleet" {
  region      = var.region
  name        = "${substr(var.name, 0, 26)}-fleet"
  port        = var.fleet_node_port
  protocol    = "UDP"
  target_type = "instance"
  vpc_id      = var.vpc_id
  # UDP cannot be health-checked; the same pods answer /readyz on the HTTP node port.
  health_check {
    protocol = "HTTP"
    port     = tostring(var.http_node_port)
    path     = "/readyz"
  }
  tags = var.tags
}

resource "aws_lb_listener" "api" {
  region            = var.region
  load_balancer_arn = aws_lb.control_plane.arn
  port              = 443
  protocol          = "TLS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.api.certificate_arn
  alpn_policy       = "HTTP1Only"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
  tags = var.tags
}

resource "aws_lb_listener" "fleet" {
  region            = var.region
  load_balancer_arn = aws_lb.control_plane.arn
  port              = 8443
  protocol          = "UDP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.fleet.arn
  }
  tags = var.tags
}

resource "aws_autoscaling_attachment" "api" {
  #checkov:skip=CKV2_AWS_15:the group belongs to an EKS managed node group, which repairs its nodes itself; ELB health checks would replace a node when a pod is not ready
  region                 = var.region
  autoscaling_group_name = var.control_plane_autoscaling_group
  lb_target_group_arn    = aws_lb_target_group.api.arn
}

resource "aws_autoscaling_attachment" "fleet" {
  #checkov:skip=CKV2_AWS_15:the group belongs to an EKS managed node group, which repairs its nodes itself; ELB health checks would replace a node when a pod is not ready
  region                 = var.region
  autoscaling_group_name = var.control_plane_autoscaling_group
  lb_target_group_arn    = aws_lb_target_group.fleet.arn
}

# API traffic arrives from the load balancer's own addresses (TLS ends
# there); fleet traffic keeps the worker's address (UDP is passed through).
resource "aws_vpc_security_group_ingress_rule" "api" {
  region            = var.region
  security_group_id = var.control_plane_security_group_id
  description       = "API and health checks from the load balancer"
  ip_protocol       = "tcp"
  from_port         = var.http_node_port
  to_port           = var.http_node_port
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_security_group_ingress_rule" "fleet" {
  count             = length(var.fleet_client_cidrs)
  region            = var.region
  security_group_id = var.control_plane_security_group_id
  description       = "Fleet port (QUIC) from edge workers"
  ip_protocol       = "udp"
  from_port         = var.fleet_node_port
  to_port           = var.fleet_node_port
  cidr_ipv4         = var.fleet_client_cidrs[count.index]
}

resource "aws_route53_record" "api" {
  zone_id = var.zone_id
  name    = var.api_name
  type    = "A"
  alias {
    name                   = aws_lb.control_plane.dns_name
    zone_id                = aws_lb.control_plane.zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "fleet" {
  for_each = toset(var.fleet_names)
  zone_id  = var.zone_id
  name     = each.value
  type     = "A"
  alias {
    name                   = aws_lb.control_plane.dns_name
    zone_id                = aws_lb.control_plane.zone_id
    evaluate_target_health = true
  }
}
