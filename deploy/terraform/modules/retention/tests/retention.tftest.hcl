run "out_of_the_box_every_class_is_kept" {
  command = plan
  assert {
    condition     = alltrue([for c, d in output.defaults : d == null]) && length(output.defaults) == 6
    error_message = "the product ships with no default: every class is kept"
  }
  assert {
    condition     = output.admin_commands == []
    error_message = "nothing to store when no default is set"
  }
  assert {
    condition     = output.lifecycle.expire_current_objects == false && output.lifecycle.object_prefix == "tenants/"
    error_message = "the bucket never expires a current recording"
  }
  assert {
    condition     = output.lifecycle.noncurrent_version_days == 7 && output.lifecycle.abort_incomplete_upload_days == 1
    error_message = "deleted versions go after a week, unfinished uploads after a day"
  }
  assert {
    condition     = output.lifecycle.infrequent_access_after_days == 30
    error_message = "recordings move to STANDARD_IA after 30 days"
  }
  assert {
    condition     = output.max_days == 3650
    error_message = "MAX_RETENTION_DAYS"
  }
}

run "operator_defaults_become_admin_commands" {
  command = plan
  variables {
    platform_defaults = { recordings = 90, transcripts = 365 }
  }
  assert {
    condition     = output.defaults["recordings"] == 90 && output.defaults["chat"] == null
    error_message = "named classes get their days, others stay kept"
  }
  assert {
    condition = output.admin_commands == [
      "attache admin retention-defaults --class recordings --days 90",
      "attache admin retention-defaults --class transcripts --days 365",
    ]
    error_message = "one command per class with a default, in sweep order"
  }
}

run "a_transition_after_the_default_deletion_is_dropped" {
  command = plan
  variables {
    platform_defaults = { recordings = 14 }
  }
  assert {
    condition     = output.lifecycle.infrequent_access_after_days == null
    error_message = "recordings deleted at 14 days never reach STANDARD_IA"
  }
  expect_failures = [check.infrequent_access_outlives_the_default]
}

run "no_transition_when_asked" {
  command = plan
  variables {
    infrequent_access_after_days = null
  }
  assert {
    condition     = output.lifecycle.infrequent_access_after_days == null
    error_message = "null keeps recordings in STANDARD"
  }
}

run "unknown_classes_are_refused" {
  command = plan
  variables {
    platform_defaults = { audit_log = 30 }
  }
  expect_failures = [var.platform_defaults]
}

run "days_beyond_the_maximum_are_refused" {
  command = plan
  variables {
    platform_defaults = { recordings = 3651 }
  }
  expect_failures = [var.platform_defaults]
}

run "zero_days_are_refused" {
  command = plan
  variables {
    platform_defaults = { transcripts = 0 }
  }
  expect_failures = [var.platform_defaults]
}

run "deleted_data_does_not_linger" {
  command = plan
  variables {
    deleted_object_grace_days = 90
  }
  expect_failures = [var.deleted_object_grace_days]
}

run "standard_ia_needs_thirty_days" {
  command = plan
  variables {
    infrequent_access_after_days = 10
  }
  expect_failures = [var.infrequent_access_after_days]
}
