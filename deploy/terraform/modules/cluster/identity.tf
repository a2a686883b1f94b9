# Workload identity of the control plane (EKS Pod Identity): object access
# on every recordings bucket it serves, their keys through S3 only, the key
# provider's wrapping keys (Encrypt, Decrypt, ReEncrypt for rotations,
# DescribeKey), and the database and cache secrets. Edge workers get no
# AWS identity at all: they stream results to the control plane.

data "aws_iam_policy_document" "pod_identity_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "control_plane" {
  count              = local.control_plane ? 1 : 0
  name               = var.role_names.control_plane
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "control_plane" {
  count = local.control_plane ? 1 : 0

  statement {
    sid       = "ListRecordings"
    actions   = ["s3:ListBucket"]
    resources = var.control_plane.bucket_arns
  }
  statement {
    sid       = "ReadWriteDeleteRecordings"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [for b in var.control_plane.bucket_arns : "${b}/*"]
  }
  statement {
    sid       = "BucketKeysThroughS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = var.control_plane.bucket_key_arns
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.*.amazonaws.com"]
    }
  }
  statement {
    sid       = "WrapTenantKeys"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey"]
    resources = var.control_plane.wrapping_key_arns
  }
  statement {
    sid       = "ReadServiceSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = var.control_plane.secret_arns
  }
  statement {
    sid       = "SecretKeysThroughSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = var.control_plane.secret_key_arns
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["secretsmanager.*.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "control_plane" {
  count  = local.control_plane ? 1 : 0
  name   = "attache-control-plane"
  role   = aws_iam_role.control_plane[0].id
  policy = data.aws_iam_policy_document.control_plane[0].json
}

resource "aws_eks_pod_identity_association" "control_plane" {
  count           = local.control_plane ? 1 : 0
  region          = var.region
  cluster_name    = aws_eks_cluster.this.name
  namespace       = var.control_plane.namespace
  service_account = var.control_plane.service_account
  role_arn        = aws_iam_role.control_plane[0].arn
  tags            = var.tags
  depends_on      = [aws_eks_addon.early]
}
