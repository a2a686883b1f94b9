output "control_plane" {
  description = "What the control plane's Deployment needs: its environment, the secrets the database and Redis URLs are built from (the attache-database and attache-redis Secrets, read as files: ATTACHE_DATABASE_URL_FILE, ATTACHE_REDIS_URL_FILE), the service account its workload identity is bound to, and the node ports its Services use."
  value = {
    env = {
      ATTACHE_PRODUCTION           = "true"
      ATTACHE_LOG_FORMAT           = "json"
      ATTACHE_HTTP_ADDR            = "0.0.0.0:8080"
      ATTACHE_QUIC_ADDR            = "0.0.0.0:8443"
      ATTACHE_PUBLIC_URL           = module.dns.api_url
      ATTACHE_FLEET_NAMES          = join(",", module.dns.fleet_names)
      ATTACHE_KEY_PROVIDER         = "kms"
      ATTACHE_KMS_KEY_ID           = module.storage[local.home].wrapping_key_arns["deployment"]
      ATTACHE_KMS_REGION           = local.home
      ATTACHE_S3_REGION            = local.home
      ATTACHE_S3_BUCKET_FOR        = join(",", [for r in keys(var.regions) : "${r}=${module.storage[r].buckets["shared"].name}@${r}"])
      ATTACHE_S3_BUCKET_FOR_TENANT = join(",", [for t, b in module.topology.tenant_buckets : "${t}=${module.storage[b.region].buckets[t].name}@${b.region}"])
    }
    database = {
      endpoint   = module.database.endpoint
      name       = module.database.database_name
      secret_arn = module.database.master_secret_arn
    }
    redis = {
      url_template = module.cache.url_template
      secret_arn   = module.cache.auth_secret_arn
    }
    identity   = module.cluster[local.home].control_plane_identity
    node_ports = module.dns.node_ports
  }
}

output "workers" {
  description = "Per region and pool: the workers' environment, node selector, tolerations, replicas and join-token command."
  value       = { for r in keys(var.regions) : r => module.edge_fleet[r].workers }
}

output "clusters" {
  description = "Per region: the cluster's name and API endpoint."
  value       = { for r in keys(var.regions) : r => { name = module.cluster[r].cluster_name, endpoint = module.cluster[r].endpoint } }
}

output "dedicated_tenants" {
  description = "Per dedicated tenant, the commands that create it on its pool and put its key on its own KMS key."
  value = { for t, b in module.topology.tenant_buckets : t => [
    "attache admin create-tenant ${t} --region ${b.region} --isolation dedicated --pool ${one([for p, v in module.topology.regions[b.region].pools : p if v.tenant == t])}",
    "attache admin tenant-key ${t} --provider-key ${module.storage[local.home].wrapping_key_arns[t]}",
  ] }
}

output "retention_commands" {
  description = "The attache admin retention-defaults calls that store the operator's default retention."
  value       = module.retention.admin_commands
}

output "nat_addresses" {
  description = "Per region: the addresses workers' traffic leaves from."
  value       = { for r in keys(var.regions) : r => module.network[r].nat_public_ips }
}
