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
    condition     = output.edge_workers["eu-west-1"] == 16 # ceil(100 * 1.25 / 8)
    error_message = "eu-west-1 should get 16 workers"
  }
  assert {
    condition     = output.edge_workers["us-east-1"] == 2
    error_message = "an idle region keeps the minimum"
  }
  assert {
    condition     = output.bucket_names["eu-west-1"] == "attache-eu-west-1-recordings"
    error_message = "bucket naming"
  }
}

run "isolated_stack_carries_the_tenant_in_its_names" {
  command = plan
  variables {
    mode   = "isolated"
    tenant = "acme"
  }
  assert {
    condition     = output.bucket_names["eu-west-1"] == "attache-acme-eu-west-1-recordings"
    error_message = "isolated bucket naming"
  }
  assert {
    condition     = output.fleet_endpoints["eu-west-1"] == "fleet.eu-west-1.attache-acme.internal"
    error_message = "isolated fleet endpoint"
  }
}

run "bad_names_are_refused" {
  command = plan
  variables {
    deployment = "Attache!"
  }
  expect_failures = [var.deployment]
}

run "zero_capacity_is_refused" {
  command = plan
  variables {
    bots_per_worker = 0
  }
  expect_failures = [var.bots_per_worker]
}
