variables {
  deployment = "attache"
  regions = {
    "eu-west-1" = { peak_bots = 100 }
    "us-east-1" = { peak_bots = 0 }
  }
}

run "saas_sizes_each_region_with_headroom_and_a_floor" {
  command = plan
  assert {
    condition     = output.edge_workers["eu-west-1"] == 32 # ceil(100 * 1.25 / 4), bots_per_worker 4 by default
    error_message = "eu-west-1 should get 32 workers"
  }
  assert {
    condition     = output.edge_workers["us-east-1"] == 2
    error_message = "an idle region keeps the minimum"
  }
  assert {
    condition     = output.regions["eu-west-1"].pools["shared"].max == 64
    error_message = "a pool may scale out to twice its planned size"
  }
  assert {
    condition     = output.bucket_names["eu-west-1"] == "attache-eu-west-1-recordings"
    error_message = "bucket naming"
  }
  assert {
    condition     = output.regions["eu-west-1"].buckets["shared"].key_alias == "alias/attache-eu-west-1-recordings"
    error_message = "each bucket has a key alias of its own"
  }
  assert {
    condition     = keys(output.regions["eu-west-1"].pools) == ["shared"]
    error_message = "a saas region without dedicated tenants has the shared pool only"
  }
  assert {
    condition     = output.regions["eu-west-1"].pools["shared"].join_pool == ""
    error_message = "shared workers enroll without a pool"
  }
  assert {
    condition     = output.wrapping_keys == { deployment = "alias/attache-key-provider" }
    error_message = "one deployment key when no tenant is dedicated"
  }
  assert {
    condition     = output.fleet_endpoints["us-east-1"] == "fleet.us-east-1.attache.internal"
    error_message = "without a domain, fleet names are internal"
  }
}

run "dedicated_tenants_get_a_pool_a_bucket_and_a_key" {
  command = plan
  variables {
    domain = "attache.example.com"
    regions = {
      "eu-west-1" = {
        peak_bots = 40
        pools = {
          acme = { tenant = "acme", peak_bots = 30 }
        }
      }
      "us-east-1" = { peak_bots = 10 }
    }
  }
  assert {
    condition     = output.regions["eu-west-1"].pools["acme"].desired == 10 # ceil(30 * 1.25 / 4)
    error_message = "the pool is sized from its own peak"
  }
  assert {
    condition     = output.regions["eu-west-1"].pools["shared"].desired == 13 # ceil(40 * 1.25 / 4)
    error_message = "the shared pool is sized from the region's peak"
  }
  assert {
    condition     = output.edge_workers["eu-west-1"] == 23
    error_message = "a region's workers are its pools' together"
  }
  assert {
    condition     = output.regions["eu-west-1"].pools["acme"].labels == { "attache/role" = "edge-worker", "attache/pool" = "acme" }
    error_message = "pool nodes are labelled with their pool"
  }
  assert {
    condition     = output.regions["eu-west-1"].pools["acme"].taints[0].value == "acme" && output.regions["eu-west-1"].pools["acme"].join_pool == "acme"
    error_message = "a dedicated pool is tainted and its join tokens name it"
  }
  assert {
    condition     = output.tenant_buckets == { acme = { region = "eu-west-1", bucket = "attache-acme-eu-west-1-recordings" } }
    error_message = "a dedicated tenant's bucket is in its home region"
  }
  assert {
    condition     = length(output.regions["us-east-1"].buckets) == 1 && length(output.regions["eu-west-1"].buckets) == 2
    error_message = "a bucket per region plus one per dedicated tenant"
  }
  assert {
    condition     = output.wrapping_keys["acme"] == "alias/attache-acme-key-provider"
    error_message = "a dedicated tenant gets a provider key of its own"
  }
  assert {
    condition     = output.api_name == "api.attache.example.com" && output.fleet_endpoints["eu-west-1"] == "fleet.eu-west-1.attache.example.com"
    error_message = "public names live under the domain"
  }
}

run "isolated_stack_carries_the_tenant_in_its_names" {
  command = plan
  variables {
    mode   = "isolated"
    tenant = "acme"
    regions = {
      "eu-west-1" = { peak_bots = 20 }
    }
  }
  assert {
    condition     = output.bucket_names["eu-west-1"] == "attache-acme-eu-west-1-recordings"
    error_message = "isolated bucket naming"
  }
  assert {
    condition     = output.fleet_endpoints["eu-west-1"] == "fleet.eu-west-1.attache-acme.internal"
    error_message = "isolated fleet endpoint"
  }
  assert {
    condition     = keys(output.regions["eu-west-1"].pools) == ["acme"] && output.regions["eu-west-1"].pools["acme"].desired == 7 # ceil(20 * 1.25 / 4)
    error_message = "an isolated stack has its tenant's pool only, sized from the region's peak"
  }
  assert {
    condition     = keys(output.regions["eu-west-1"].buckets) == ["acme"]
    error_message = "an isolated stack has no shared bucket"
  }
  assert {
    condition     = output.wrapping_keys == { deployment = "alias/attache-acme-key-provider" }
    error_message = "an isolated stack has one provider key, its tenant's"
  }
}

run "an_isolated_pool_can_be_named" {
  command = plan
  variables {
    mode   = "isolated"
    tenant = "acme"
    pool   = "acme-eu"
  }
  assert {
    condition     = output.regions["eu-west-1"].pools["acme-eu"].node_group == "attache-acme-eu-west-1-acme-eu"
    error_message = "the node group carries the pool name"
  }
}

run "isolated_without_a_tenant_is_flagged" {
  command = plan
  variables {
    mode = "isolated"
  }
  expect_failures = [check.isolated_needs_a_tenant]
}

run "bad_names_are_refused" {
  command = plan
  variables {
    deployment = "Attache!"
  }
  expect_failures = [var.deployment]
}

run "bots_per_worker_sizes_the_pools" {
  command = plan
  variables {
    bots_per_worker = 8
  }
  assert {
    condition     = output.edge_workers["eu-west-1"] == 16 && output.worker_capacity == 8 # ceil(100 * 1.25 / 8)
    error_message = "eight bots per worker halve the workers"
  }
}

run "zero_capacity_is_refused" {
  command = plan
  variables {
    bots_per_worker = 0
  }
  expect_failures = [var.bots_per_worker]
}

run "a_pool_cannot_be_called_shared" {
  command = plan
  variables {
    regions = {
      "eu-west-1" = { peak_bots = 1, pools = { shared = { tenant = "acme", peak_bots = 1 } } }
    }
  }
  expect_failures = [var.regions]
}

run "a_tenant_has_one_pool" {
  command = plan
  variables {
    regions = {
      "eu-west-1" = { peak_bots = 1, pools = { acme = { tenant = "acme", peak_bots = 1 } } }
      "us-east-1" = { peak_bots = 1, pools = { acme-us = { tenant = "acme", peak_bots = 1 } } }
    }
  }
  expect_failures = [var.regions]
}

run "names_too_long_for_aws_are_refused" {
  command = plan
  variables {
    mode   = "isolated"
    tenant = "a-tenant-whose-name-is-long-enough-to-overflow-bucket-names"
  }
  expect_failures = [output.regions]
}
