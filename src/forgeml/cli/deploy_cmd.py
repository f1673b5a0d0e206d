"""``forgeml deploy``: render what it takes to run a registered model elsewhere.

``forgeml deploy k8s MODEL -o DIR`` writes a Dockerfile that bakes the verified model
into an image, a kustomize base for Kubernetes and a README with the exact commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forgeml.cli.options import OutputFormat, OutputOpt, RegistryOpt, registry_uri

app = typer.Typer(help="Render deployment files for a registered model.", no_args_is_help=True)


@app.command("k8s")
def k8s(
    model: Annotated[
        str, typer.Argument(help="Model reference: name, name@alias or name@version.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder to write: new or empty (--force replaces an earlier render).",
        ),
    ],
    registry: RegistryOpt = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Image the Deployment runs, as registry/name:tag or name@digest. "
            "Default: forgeml-<model>:<version>.",
            show_default=False,
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(help="A fixed number of replicas, without an autoscaler.", show_default=False),
    ] = None,
    min_replicas: Annotated[
        int | None,
        typer.Option(help="Fewest replicas the autoscaler keeps. Default: 2.", show_default=False),
    ] = None,
    max_replicas: Annotated[
        int | None,
        typer.Option(help="Most replicas the autoscaler starts. Default: 10.", show_default=False),
    ] = None,
    cpu_target: Annotated[
        int | None,
        typer.Option(
            help="Autoscaler target: average CPU use, % of the request. Default: 70.",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            help="Namespace to deploy into. Default: the kubectl context's.", show_default=False
        ),
    ] = None,
    service_monitor: Annotated[
        bool,
        typer.Option(
            "--service-monitor",
            help="Include a Prometheus Operator ServiceMonitor (needs its CRDs).",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier render in --out.")
    ] = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Render MODEL's image build and Kubernetes manifests into --out.

    Writes a Dockerfile, a kustomize base in k8s/, a verified model copy and a README.md.
    """
    from forgeml.cli.output import emit_json, out_console
    from forgeml.deploy import ScalingOptions, deploy_k8s

    options = ScalingOptions(
        image=image,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpu_target=cpu_target,
        namespace=namespace,
        service_monitor=service_monitor,
    )
    result = deploy_k8s(registry_uri(registry), model, out, options, force=force)
    if output == OutputFormat.json:
        emit_json(result)
        return
    scaling = (
        f"{result['replicas']} replicas"
        if result["autoscaling"] is None
        else "{min_replicas}..{max_replicas} replicas at {cpu_target}% CPU".format(
            **result["autoscaling"]
        )
    )
    out_console.print(f"rendered {result['model']} to {result['path']}")
    out_console.print(f"  image: {result['image']}; {scaling}")
    out_console.print(
        f"  next:  see {Path(result['path']) / 'README.md'}, or run from that folder:"
    )
    for command in result["commands"]:
        out_console.print(f"    {command}")
