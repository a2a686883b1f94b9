# One tenant with everything its own: network, cluster, PostgreSQL, Redis,
# its bucket under its own KMS key, its own key-provider key, and a worker
# pool of its own. The control plane runs with --single-tenant.

module "topology" {
  source          = "../../modules/topology"
  deployment      = var.deployment
  mode            = "isolated"
  tenant          = var.tenant
  pool            = var.pool
  domain          = var.domain
  regions         = { (var.region) = { peak_bots = var.peak_bots } }
  bots_per_worker = var.bots_per_worker
  headroom        = var.headroom
}

module "retention" {
  source                       = "../../modules/retention"
  platform_defaults            = var.retention.platform_defaults
  deleted_object_grace_days    = var.retention.deleted_object_grace_days
  infrequent_access_after_days = var.retention.infrequent_access_after_days == 0 ? null : var.retention.infrequent_access_after_days
}

locals {
  plan      = module.topology.regions[var.region]
  namespace = var.namespace != "" ? var.namespace : "attache-${var.tenant}"
}

module "network" {
  source             = "../../modules/network"
  region             = var.region
  name               = local.plan.name
  cidr               = var.cidr
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
}

module "storage" {
  source          = "../../modules/storage"
  region          = var.region
  buckets         = local.plan.buckets
  log_bucket      = local.plan.log_bucket
  lifecycle_rules = module.retention.lifecycle
  wrapping_keys   = module.topology.wrapping_keys
}

module "database" {
  source                    = "../../modules/database"
  region                    = var.region
  name                      = module.topology.prefix
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.network.control_plane_security_group_id]
  instance_class            = var.database_instance_class
  allocated_storage_gb      = var.database_storage_gb
  multi_az                  = var.database_multi_az
  backup_retention_days     = var.database_backup_retention_days
}

module "cache" {
  source                    = "../../modules/cache"
  region                    = var.region
  name                      = module.topology.prefix
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.network.control_plane_security_group_id]
  node_type                 = var.cache_node_type
}

module "cluster" {
  source               = "../../modules/cluster"
  region               = var.region
  name                 = local.plan.name
  role_names           = local.plan.roles
  kubernetes_version   = var.kubernetes_version
  vpc_id               = module.network.vpc_id
  subnet_ids           = module.network.private_subnet_ids
  public_access_cidrs  = var.cluster_public_access_cidrs
  admin_principal_arns = var.admin_principal_arns
  system_nodes         = var.control_plane_nodes
  control_plane = {
    security_group_id = module.network.control_plane_security_group_id
    namespace         = local.namespace
    bucket_arns       = module.storage.bucket_arns
    bucket_key_arns   = module.storage.bucket_key_arns
    wrapping_key_arns = values(module.storage.wrapping_key_arns)
    secret_arns       = [module.database.master_secret_arn, module.cache.auth_secret_arn]
    secret_key_arns   = [module.database.kms_key_arn, module.cache.kms_key_arn]
  }
}

module "edge_fleet" {
  source             = "../../modules/edge_fleet"
  region             = var.region
  cluster_name       = module.cluster.cluster_name
  node_role_arn      = module.cluster.node_role_arn
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [module.cluster.cluster_security_group_id, module.network.workers_security_group_id]
  volume_key_arn     = module.cluster.node_volume_key_arn
  pools              = local.plan.pools
  capacity           = module.topology.worker_capacity
  fleet_endpoint     = module.topology.fleet_endpoints[var.region]
  token_ttl_minutes  = var.worker_token_ttl_minutes
  instance_types     = var.worker_instance_types
}

module "dns" {
  source                          = "../../modules/dns"
  region                          = var.region
  name                            = local.plan.name
  zone_id                         = var.zone_id
  api_name                        = module.topology.api_name
  fleet_names                     = values(module.topology.fleet_endpoints)
  vpc_id                          = module.network.vpc_id
  vpc_cidr                        = module.network.cidr
  public_subnet_ids               = module.network.public_subnet_ids
  control_plane_security_group_id = module.network.control_plane_security_group_id
  control_plane_autoscaling_group = module.cluster.control_plane_autoscaling_group
  log_bucket                      = module.storage.log_bucket
  # The tenant's workers reach the fleet port through this VPC's NAT gateways.
  fleet_client_cidrs = concat([for ip in module.network.nat_public_ips : "${ip}/32"], var.extra_fleet_cidrs)
}
