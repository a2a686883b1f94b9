# The shared SaaS: one control plane in the home region serving every
# region; per region a network, a cluster, its recordings buckets (shared,
# and one per dedicated tenant) and its edge workers, per pool.

module "topology" {
  source          = "../../modules/topology"
  deployment      = var.deployment
  mode            = "saas"
  domain          = var.domain
  regions         = { for r, v in var.regions : r => { peak_bots = v.peak_bots, pools = v.pools } }
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
  home = var.home_region
}

module "network" {
  source             = "../../modules/network"
  for_each           = var.regions
  region             = each.key
  name               = module.topology.regions[each.key].name
  cidr               = each.value.cidr
  availability_zones = each.value.availability_zones
  single_nat_gateway = each.value.single_nat_gateway
}

module "storage" {
  source          = "../../modules/storage"
  for_each        = var.regions
  region          = each.key
  buckets         = module.topology.regions[each.key].buckets
  log_bucket      = module.topology.regions[each.key].log_bucket
  lifecycle_rules = module.retention.lifecycle
  wrapping_keys   = each.key == local.home ? module.topology.wrapping_keys : {}
}

module "database" {
  source                    = "../../modules/database"
  region                    = local.home
  name                      = module.topology.prefix
  vpc_id                    = module.network[local.home].vpc_id
  subnet_ids                = module.network[local.home].private_subnet_ids
  client_security_group_ids = [module.network[local.home].control_plane_security_group_id]
  instance_class            = var.database_instance_class
  allocated_storage_gb      = var.database_storage_gb
  multi_az                  = var.database_multi_az
  backup_retention_days     = var.database_backup_retention_days
}

module "cache" {
  source                    = "../../modules/cache"
  region                    = local.home
  name                      = module.topology.prefix
  vpc_id                    = module.network[local.home].vpc_id
  subnet_ids                = module.network[local.home].private_subnet_ids
  client_security_group_ids = [module.network[local.home].control_plane_security_group_id]
  node_type                 = var.cache.node_type
  replicas                  = var.cache.replicas
}

module "cluster" {
  source               = "../../modules/cluster"
  for_each             = var.regions
  region               = each.key
  name                 = module.topology.regions[each.key].name
  role_names           = module.topology.regions[each.key].roles
  kubernetes_version   = var.kubernetes_version
  vpc_id               = module.network[each.key].vpc_id
  subnet_ids           = module.network[each.key].private_subnet_ids
  public_access_cidrs  = var.cluster_public_access_cidrs
  admin_principal_arns = var.admin_principal_arns
  system_nodes = each.key == local.home ? var.control_plane_nodes : {
    instance_types = ["m7i.large"]
    min            = 2
    desired        = 2
    max            = 4
  }
  # The one control plane serves every region's buckets.
  control_plane = each.key == local.home ? {
    security_group_id = module.network[each.key].control_plane_security_group_id
    namespace         = var.namespace
    bucket_arns       = flatten([for r in keys(var.regions) : module.storage[r].bucket_arns])
    bucket_key_arns   = flatten([for r in keys(var.regions) : module.storage[r].bucket_key_arns])
    wrapping_key_arns = values(module.storage[local.home].wrapping_key_arns)
    secret_arns       = [module.database.master_secret_arn, module.cache.auth_secret_arn]
    secret_key_arns   = [module.database.kms_key_arn, module.cache.kms_key_arn]
  } : null
}

module "edge_fleet" {
  source             = "../../modules/edge_fleet"
  for_each           = var.regions
  region             = each.key
  cluster_name       = module.cluster[each.key].cluster_name
  node_role_arn      = module.cluster[each.key].node_role_arn
  subnet_ids         = module.network[each.key].private_subnet_ids
  security_group_ids = [module.cluster[each.key].cluster_security_group_id, module.network[each.key].workers_security_group_id]
  volume_key_arn     = module.cluster[each.key].node_volume_key_arn
  pools              = module.topology.regions[each.key].pools
  capacity           = module.topology.worker_capacity
  fleet_endpoint     = module.topology.fleet_endpoints[each.key]
  token_ttl_minutes  = var.worker_token_ttl_minutes
  instance_types     = each.value.worker_instance_types
}

module "dns" {
  source                          = "../../modules/dns"
  region                          = local.home
  name                            = module.topology.regions[local.home].name
  zone_id                         = var.zone_id
  api_name                        = module.topology.api_name
  fleet_names                     = values(module.topology.fleet_endpoints)
  vpc_id                          = module.network[local.home].vpc_id
  vpc_cidr                        = module.network[local.home].cidr
  public_subnet_ids               = module.network[local.home].public_subnet_ids
  control_plane_security_group_id = module.network[local.home].control_plane_security_group_id
  control_plane_autoscaling_group = module.cluster[local.home].control_plane_autoscaling_group
  log_bucket                      = module.storage[local.home].log_bucket
  # Workers of every region leave through their NAT gateways.
  fleet_client_cidrs = concat(
    [for ip in flatten([for r in keys(var.regions) : module.network[r].nat_public_ips]) : "${ip}/32"],
    var.extra_fleet_cidrs,
  )
}
