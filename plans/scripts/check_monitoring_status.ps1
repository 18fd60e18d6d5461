<#
.SYNOPSIS
  Is monitoring up? Prints a JSON object of numbers for the `monitoring` probe of phase4.yaml.
.DESCRIPTION
  Replaces the seed's check_monitoring_status.ps1, which failed silently (exit 1 in a log).
  Each check is 1 (up) or 0 (down); the script exits 1 when any is down, so ion-plan records
  an error sample and preflight stops before traffic moves.
#>
param(
    [string]$PrometheusUrl = $(if ($env:PROMETHEUS_URL) { $env:PROMETHEUS_URL } else { 'http://prometheus.monitoring:9090' }),
    [string]$Project = 'ion-prod',
    [switch]$Json
)
$ErrorActionPreference = 'Stop'

function Test-Up([scriptblock]$Check) {
    try { & $Check | Out-Null; return 1 } catch { [Console]::Error.WriteLine($_.Exception.Message); return 0 }
}

$result = [ordered]@{
    prometheus_up  = Test-Up { Invoke-WebRequest -UseBasicParsing -TimeoutSec 10 "$PrometheusUrl/-/healthy" }
    prometheus_ready = Test-Up { Invoke-WebRequest -UseBasicParsing -TimeoutSec 10 "$PrometheusUrl/-/ready" }
    alerting_up    = Test-Up { gcloud alpha monitoring policies list --project $Project --limit 1 --format json }
}
if ($Json) { $result | ConvertTo-Json -Compress } else { $result | Format-Table | Out-String | Write-Output }
if ($result.Values -contains 0) { exit 1 }
