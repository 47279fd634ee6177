#!/usr/bin/env bash
# Revoking Ferry's access, run by the customer's administrator in the customer's tenant.
# Pick what to cut (each is independent; Ferry turns the tenant to the state in brackets on its
# first refused request, stops shipping it, and re-checks every recheck_interval, 5 min by default):
#   WHAT=storage    remove Storage Blob Data Reader on the container      [access_denied]
#   WHAT=key        disable the key (instant, for every reader of it)       [key_revoked]
#   WHAT=key-role   remove Ferry's unwrap permission on the key             [key_revoked]
#   WHAT=workspace  remove Log Analytics Reader on the workspace            [access_denied]
#   WHAT=consent    delete the app's service principal (all of the above)   [consent_revoked]
# Timings are in docs/customer-guide.md.
#
#   APP_ID=<provider app id> WHAT=storage STORAGE_RG=rg ACCOUNT=contosologs CONTAINER=logs ./revoke.sh
set -euo pipefail

: "${APP_ID:?set APP_ID, the app (client) id of the provider}"
: "${WHAT:?set WHAT to storage, key, key-role, workspace or consent}"
SP=$(az ad sp show --id "$APP_ID" --query id -o tsv)

case "$WHAT" in
  storage)
    : "${STORAGE_RG:?}" "${ACCOUNT:?}" "${CONTAINER:?}"
    ACCOUNT_ID=$(az storage account show -n "$ACCOUNT" -g "$STORAGE_RG" --query id -o tsv)
    az role assignment delete --assignee "$SP" --role "Storage Blob Data Reader" \
      --scope "$ACCOUNT_ID/blobServices/default/containers/$CONTAINER"
    ;;
  key)
    : "${VAULT:?}" "${KEY:?}"
    az keyvault key set-attributes --vault-name "$VAULT" -n "$KEY" --enabled false -o none
    echo "re-enable: az keyvault key set-attributes --vault-name $VAULT -n $KEY --enabled true"
    ;;
  key-role)
    : "${VAULT:?}" "${KEY:?}"
    VAULT_ID=$(az keyvault show -n "$VAULT" --query id -o tsv)
    if [[ "$(az keyvault show -n "$VAULT" --query properties.enableRbacAuthorization -o tsv)" == "true" ]]; then
      az role assignment delete --assignee "$SP" --role "Key Vault Crypto Service Encryption User" \
        --scope "$VAULT_ID/keys/$KEY"
    else
      az keyvault delete-policy -n "$VAULT" --object-id "$SP" -o none
    fi
    ;;
  workspace)
    : "${WORKSPACE_RG:?}" "${WORKSPACE:?}"
    WS_ID=$(az monitor log-analytics workspace show -g "$WORKSPACE_RG" -n "$WORKSPACE" --query id -o tsv)
    az role assignment delete --assignee "$SP" --role "Log Analytics Reader" --scope "$WS_ID"
    ;;
  consent)
    # Removes the service principal: its role assignments and key permissions go with it.
    # Tokens already issued stay valid until they expire (up to about 90 minutes): to stop at
    # once, also disable the key (WHAT=key) or remove the roles first.
    az ad sp delete --id "$SP"
    ;;
  *)
    echo "WHAT must be storage, key, key-role, workspace or consent" >&2
    exit 2
    ;;
esac
echo "done: $WHAT revoked for app $APP_ID (service principal $SP)"
