"""The SDK's front door stays small and deliberate (like httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import phds.sdk


def test_sdk_exports_are_exactly_the_public_api() -> None:
    assert sorted(phds.sdk.__all__) == [
        "Attribution",
        "BenchmarkResult",
        "CharacterisationResult",
        "Client",
        "CoxResult",
        "FeasibilityResult",
        "FitResult",
        "GenericResult",
        "GlmResult",
        "KmResult",
        "MeanVarianceResult",
        "Study",
        "StudyResult",
        "SummaryResult",
        "SyntheticResult",
        "TableResult",
        "Total",
        "load_study",
    ]
    for name in phds.sdk.__all__:
        assert getattr(phds.sdk, name).__module__.startswith("phds.sdk."), name


def test_no_private_or_stray_public_names() -> None:
    public = {n for n in vars(phds.sdk) if not n.startswith("_")}
    modules = {"client", "plots", "results", "results_descriptive", "results_stats", "stats_methods"}
    modules.update({"plots_counts", "studyfile", "verify"})  # verify: the client's study verification
    modules.add("billing")  # client.applications, .quotes, .invoices and .billing
    # client.synthesize, its result and the report page (loaded by write_report)
    modules.update({"results_synthetic", "synthetic_methods", "synthetic_report_html"})
    modules.update({"result_registry", "http_errors"})  # result_for; the hub's errors as PhdsError
    modules.update({"benchmark_methods", "results_benchmark", "plots_funnel"})  # client.benchmark
    modules.update({"learning_methods", "results_learning", "plots_learning"})  # client.fit, FitResult
    assert public - modules == set(phds.sdk.__all__)
