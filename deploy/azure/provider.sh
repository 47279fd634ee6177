#!/usr/bin/env bash
# Provider onboarding, once, in the provider's own tenant (az CLI, logged in as someone who may
# create app registrations and assign roles in the subscription):
#   1. the multi-tenant app customers consent to;
#   2. a user-assigned managed identity Ferry runs as, trusted by the app through a federated
#      credential (no secret anywhere);
#   3. the destination storage account and container, with Storage Blob Data Contributor for the
#      managed identity on that container only;
#   4. optionally (AKS_OIDC_ISSUER set), federated credentials for the AKS service account
#      system:serviceaccount:ferry:ferry on both the identity and the app.
# Prints the values the Ferry config needs. Safe to read before running: every step is one
# `az` command; re-running fails on what already exists (delete it or skip the step).
#
#   RG=ferry-rg LOCATION=westeurope ACCOUNT=providerlogs ./provider.sh
set -euo pipefail

: "${RG:?set RG, the resource group for the Ferry resources}"
: "${LOCATION:?set LOCATION, e.g. westeurope}"
: "${ACCOUNT:?set ACCOUNT, the destination storage account name (3-24 lowercase letters/digits)}"
CONTAINER="${CONTAINER:-shipped}"
APP_NAME="${APP_NAME:-ferry}"
MI_NAME="${MI_NAME:-ferry}"
# Where a customer's administrator lands after consenting (must be https; any page of yours).
CONSENT_REDIRECT_URI="${CONSENT_REDIRECT_URI:-https://portal.azure.com/}"
AKS_OIDC_ISSUER="${AKS_OIDC_ISSUER:-}"          # az aks show -g RG -n CLUSTER --query oidcIssuerProfile.issuerUrl -o tsv
K8S_SUBJECT="${K8S_SUBJECT:-system:serviceaccount:ferry:ferry}"

PROVIDER_TENANT=$(az account show --query tenantId -o tsv)
echo "provider tenant: $PROVIDER_TENANT"

# 1. The multi-tenant app. It requests no API permissions: customers grant it Azure RBAC roles
#    on their own resources, nothing in Microsoft Graph.
APP_ID=$(az ad app create \
  --display-name "$APP_NAME" \
  --sign-in-audience AzureADMultipleOrgs \
  --web-redirect-uris "$CONSENT_REDIRECT_URI" \
  --query appId -o tsv)
echo "app client id: $APP_ID"

# 2. The managed identity, and the app's trust in it: the identity's token for
#    api://AzureADTokenExchange is the app's client assertion in every customer tenant.
az group create -n "$RG" -l "$LOCATION" -o none
read -r MI_CLIENT_ID MI_PRINCIPAL_ID < <(az identity create -g "$RG" -n "$MI_NAME" -l "$LOCATION" \
  --query '[clientId, principalId]' -o tsv | tr '\n' ' ')
echo "managed identity client id: $MI_CLIENT_ID (object id $MI_PRINCIPAL_ID)"
az ad app federated-credential create --id "$APP_ID" --parameters "{
  \"name\": \"ferry-managed-identity\",
  \"issuer\": \"https://login.microsoftonline.com/$PROVIDER_TENANT/v2.0\",
  \"subject\": \"$MI_PRINCIPAL_ID\",
  \"audiences\": [\"api://AzureADTokenExchange\"],
  \"description\": \"Ferry's user-assigned managed identity acts as the app\"
}" -o none

# 3. Destination storage: no shared keys, no public blobs, TLS 1.2+; Contributor on one container.
az storage account create -n "$ACCOUNT" -g "$RG" -l "$LOCATION" \
  --sku Standard_ZRS --kind StorageV2 \
  --min-tls-version TLS1_2 --allow-blob-public-access false --allow-shared-key-access false \
  --https-only true -o none
ACCOUNT_ID=$(az storage account show -n "$ACCOUNT" -g "$RG" --query id -o tsv)
az storage container create --account-name "$ACCOUNT" -n "$CONTAINER" --auth-mode login -o none
az role assignment create \
  --assignee-object-id "$MI_PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
  --role "Storage Blob Data Contributor" \
  --scope "$ACCOUNT_ID/blobServices/default/containers/$CONTAINER" -o none

# 4. AKS workload identity (optional): the pod's service account token is trusted by the
#    identity (destination writes) and by the app (customer tenants).
if [[ -n "$AKS_OIDC_ISSUER" ]]; then
  az identity federated-credential create -g "$RG" --identity-name "$MI_NAME" \
    --name ferry-aks --issuer "$AKS_OIDC_ISSUER" --subject "$K8S_SUBJECT" \
    --audiences api://AzureADTokenExchange -o none
  az ad app federated-credential create --id "$APP_ID" --parameters "{
    \"name\": \"ferry-aks\",
    \"issuer\": \"$AKS_OIDC_ISSUER\",
    \"subject\": \"$K8S_SUBJECT\",
    \"audiences\": [\"api://AzureADTokenExchange\"]
  }" -o none
  echo "AKS: annotate the service account with azure.workload.identity/client-id: $MI_CLIENT_ID"
fi

cat <<CONFIG

# --- for /etc/ferry/ferry.toml -------------------------------------------------------------
[app]
client_id = "$APP_ID"
home_tenant_id = "$PROVIDER_TENANT"
credential = { kind = "federated_managed_identity", managed_identity_client_id = "$MI_CLIENT_ID" }
# on AKS: credential = { kind = "workload_identity" }

[destination]
account_url = "https://$ACCOUNT.blob.core.windows.net"
container = "$CONTAINER"
credential = { kind = "managed_identity", client_id = "$MI_CLIENT_ID" }
# on AKS: credential = { kind = "workload_identity" }
# -------------------------------------------------------------------------------------------
Send each customer: the app client id ($APP_ID) and deploy/azure/customer.sh.
Their consent URL: ferry consent-url -c /etc/ferry/ferry.toml --tenant <name>
CONFIG
