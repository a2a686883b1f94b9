terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
  }
  # State holds the Redis AUTH token: keep it in an encrypted, versioned
  # bucket (terraform init -backend-config=bucket=... -backend-config=key=...).
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = merge({ "attache/deployment" = var.deployment, "attache/tenant" = var.tenant }, var.tags)
  }
}
