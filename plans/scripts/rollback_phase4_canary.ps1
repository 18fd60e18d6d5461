<#
.SYNOPSIS
  Moves all traffic of ION Mentoring back to the legacy revision (phase4.yaml's rollback step).
.DESCRIPTION
  -DryRun prints the gcloud command and checks that gcloud and the service are reachable,
  changing nothing: phase4.yaml's preflight runs it that way.
#>
param(
    [string]$Project = 'ion-prod',
    [string]$Region = 'asia-northeast3',
    [string]$Service = 'ion-mentoring',
    [switch]$DryRun
)
$ErrorActionPreference = 'Stop'

$arguments = @('run', 'services', 'update-traffic', $Service,
               '--project', $Project, '--region', $Region, '--to-tags', 'canary=0')
if ($DryRun) {
    Write-Output "dry run: gcloud $($arguments -join ' ')"
    gcloud run services describe $Service --project $Project --region $Region --format 'value(status.url)'
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    exit 0
}
gcloud @arguments
exit $LASTEXITCODE
