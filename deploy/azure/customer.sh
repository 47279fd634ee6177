#!/usr/bin/env bash
# Customer onboarding, run by the customer's administrator in the customer's own tenant
# (az CLI logged in to that tenant). Grants the provider's app exactly what Ferry needs:
#   - consent: a service principal of the app in this tenant (no API permissions are requested);
#   - Storage Blob Data Reader on ONE container (not the account);
#   - Key Vault Crypto Service Encryption User on ONE key (get, wrapKey, unwrapKey), only if the
#     data is client-side encrypted or must stay under your key at the provider;
#   - Log Analytics Reader on ONE workspace, only if a workspace is shipped.
# Every grant is printed with the command that revokes it (see also revoke.sh).
#
#   APP_ID=<provider app id> STORAGE_RG=rg ACCOUNT=contosologs CONTAINER=insights-logs-auditevent \
#   [VAULT=contoso-kv KEY=ferry-cmk] [WORKSPACE_RG=rg WORKSPACE=la-ws] ./customer.sh
set -euo pipefail

: "${APP_ID:?set APP_ID, the app (client) id of the provider}"
: "${STORAGE_RG:?set STORAGE_RG, the resource group of the storage account}"
: "${ACCOUNT:?set ACCOUNT, the storage account holding the logs}"
: "${CONTAINER:?set CONTAINER, the one container Ferry may read}"
VAULT="${VAULT:-}"
KEY="${KEY:-}"
WORKSPACE="${WORKSPACE:-}"
WORKSPACE_RG="${WORKSPACE_RG:-}"

TENANT=$(az account show --query tenantId -o tsv)
echo "customer tenant: $TENANT"

# Consent. Either open the admin-consent URL in a browser as a Global or Privileged Role
# Administrator:
echo "admin-consent URL: https://login.microsoftonline.com/$TENANT/adminconsent?client_id=$APP_ID"
# or create the service principal here (the same effect for an app that requests no permissions):
SP=$(az ad sp show --id "$APP_ID" --query id -o tsv 2>/dev/null || az ad sp create --id "$APP_ID" --query id -o tsv)
echo "service principal object id: $SP"
echo "  revoke: az ad sp delete --id $SP"

assign() { # role scope
  az role assignment create --assignee-object-id "$SP" --assignee-principal-type ServicePrincipal \
    --role "$1" --scope "$2" -o none
  echo "granted '$1' on $2"
  echo "  revoke: az role assignment delete --assignee $SP --role \"$1\" --scope $2"
}

ACCOUNT_ID=$(az storage account show -n "$ACCOUNT" -g "$STORAGE_RG" --query id -o tsv)
assign "Storage Blob Data Reader" "$ACCOUNT_ID/blobServices/default/containers/$CONTAINER"

if [[ -n "$VAULT" && -n "$KEY" ]]; then
  VAULT_ID=$(az keyvault show -n "$VAULT" --query id -o tsv)
  if [[ "$(az keyvault show -n "$VAULT" --query properties.enableRbacAuthorization -o tsv)" == "true" ]]; then
    assign "Key Vault Crypto Service Encryption User" "$VAULT_ID/keys/$KEY"
  else
    # access-policy vaults cannot scope to one key: grant the three key operations only
    az keyvault set-policy -n "$VAULT" --object-id "$SP" --key-permissions get wrapKey unwrapKey -o none
    echo "granted key permissions get, wrapKey, unwrapKey on vault $VAULT (access policy)"
    echo "  revoke: az keyvault delete-policy -n $VAULT --object-id $SP"
  fi
  echo "  cut at once, for every reader of the key: az keyvault key set-attributes --vault-name $VAULT -n $KEY --enabled false"
fi

if [[ -n "$WORKSPACE" ]]; then
  : "${WORKSPACE_RG:?set WORKSPACE_RG, the resource group of the workspace}"
  WS_ID=$(az monitor log-analytics workspace show -g "$WORKSPACE_RG" -n "$WORKSPACE" --query id -o tsv)
  assign "Log Analytics Reader" "$WS_ID"
fi

echo
echo "Tell the provider: tenant id $TENANT, account $ACCOUNT, container $CONTAINER${VAULT:+, key https://$VAULT.vault.azure.net/keys/$KEY}${WORKSPACE:+, workspace $WORKSPACE}."
