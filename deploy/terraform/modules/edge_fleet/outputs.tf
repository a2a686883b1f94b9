output "node_groups" {
  description = "Per pool: the node group's name and ARN."
  value       = { for p, _ in var.pools : p => { name = aws_eks_node_group.pool[p].node_group_name, arn = aws_eks_node_group.pool[p].arn } }
}

output "workers" {
  description = "Per pool, what the workers' StatefulSet needs: its environment (ATTACHE_CONTROL_PLANE, ATTACHE_SERVER_NAME, ATTACHE_CAPACITY, ATTACHE_WORKER_METRICS_ADDR on port 9090, the port of the manifests' probes and metrics Service), node selector and tolerations, replicas, and the command that issues the join token its pods share (--uses: as many as the pool may grow to; --ttl-minutes: token_ttl_minutes)."
  value = { for p, v in var.pools : p => {
    env = {
      ATTACHE_CONTROL_PLANE = "${var.fleet_endpoint}:${var.fleet_port}"
      ATTACHE_SERVER_NAME   = var.fleet_endpoint
      ATTACHE_CAPACITY      = tostring(var.capacity)
      # /metrics and /healthz (ok, then draining): the liveness probe's address.
      ATTACHE_WORKER_METRICS_ADDR = "0.0.0.0:9090"
    }
    node_selector = v.labels
    tolerations   = [for t in v.taints : { key = t.key, operator = "Equal", value = t.value, effect = lookup({ NO_SCHEDULE = "NoSchedule", NO_EXECUTE = "NoExecute", PREFER_NO_SCHEDULE = "PreferNoSchedule" }, t.effect) }]
    replicas      = v.desired
    # One token the pool's autoscaled nodes share, good for as many as it may
    # grow to and for as long as new pods of the set may still enroll.
    token_command = join(" ", compact(["attache admin worker-token --region ${var.region}", v.join_pool == "" ? "" : "--pool ${v.join_pool}", "--uses ${v.max}", "--ttl-minutes ${var.token_ttl_minutes}"]))
  } }
}
