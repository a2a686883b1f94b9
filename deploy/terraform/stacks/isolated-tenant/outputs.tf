output "control_plane" {
  description = "What the control plane's Deployment needs: its environment (single tenant, the tenant's bucket, its KMS key), the secrets the database and Redis URLs are built from (the attache-database and attache-redis Secrets, read as files: ATTACHE_DATABASE_URL_FILE, ATTACHE_REDIS_URL_FILE), the service account its workload identity is bound to, and the node ports its Services use."
  value = {
    env = {
      ATTACHE_PRODUCTION           = "true"
      ATTACHE_LOG_FORMAT           = "json"
      ATTACHE_SINGLE_TENANT        = var.tenant
      ATTACHE_HTTP_ADDR            = "0.0.0.0:8080"
      ATTACHE_QUIC_ADDR            = "0.0.0.0:8443"
      ATTACHE_PUBLIC_URL           = module.dns.api_url
      ATTACHE_FLEET_NAMES          = join(",", module.dns.fleet_names)
      ATTACHE_KEY_PROVIDER         = "kms"
      ATTACHE_KMS_KEY_ID           = module.storage.wrapping_key_arns["deployment"]
      ATTACHE_KMS_REGION           = var.region
      ATTACHE_S3_REGION            = var.region
      ATTACHE_S3_BUCKET_FOR_TENANT = "${var.tenant}=${module.storage.buckets[var.tenant].name}@${var.region}"
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
    identity   = module.cluster.control_plane_identity
    node_ports = module.dns.node_ports
  }
}

output "workers" {
  description = "The tenant's pool: the workers' environment, node selector, tolerations, replicas and join-token command."
  value       = module.edge_fleet.workers
}

output "tenant_commands" {
  description = "The command that creates the tenant as a dedicated tenant on its pool, then the retention defaults to store."
  value = concat(
    ["attache admin create-tenant ${var.tenant} --region ${var.region} --isolation dedicated --pool ${one(keys(local.plan.pools))}"],
    module.retention.admin_commands,
  )
}

output "cluster" {
  description = "The cluster's name and API endpoint."
  value       = { name = module.cluster.cluster_name, endpoint = module.cluster.endpoint }
}

output "nat_addresses" {
  description = "The addresses the tenant's workers' traffic leaves from."
  value       = module.network.nat_public_ips
}
