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

# One provider for every region: each resource names its region (AWS
# provider 6), so the regions can come from one map.
provider "aws" {
  region = var.home_region
  default_tags {
    tags = merge({ "attache/deployment" = var.deployment }, var.tags)
  }
}
