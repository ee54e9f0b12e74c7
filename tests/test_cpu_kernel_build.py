"""The CPU kernels' build cache: one build per (source contents, flags, torch install, CPU), shared by every
checkout on a machine, and a message whenever a compilation actually happens. Nothing is compiled
here: torch's cpp_extension.load is replaced by a fake that writes the library file."""

import os
import shutil
from pathlib import Path

import pytest
from torch.utils import cpp_extension

from sequence_models.kernels import cpu as cpu_kernels

BASE = dict(source=b"int x;", compile_flags=["-O3"], link_flags=["-lmvec"], torch_version="2.13.0", capability="AVX2",
            torch_dir="/venv/lib/python3.11/site-packages/torch")


def test_build_key_is_stable_for_the_same_inputs():
    assert cpu_kernels.build_key(**BASE) == cpu_kernels.build_key(**dict(BASE))


@pytest.mark.parametrize("change", [
    dict(source=b"int y;"),
    dict(compile_flags=["-O3", "-fno-finite-math-only"]),
    dict(compile_flags=["-O2"]),
    dict(link_flags=[]),
    dict(torch_version="2.13.1"),
    dict(capability="AVX512"),
    dict(torch_dir="/another-venv/lib/python3.11/site-packages/torch"),  # its headers and libraries are in the build
])
def test_build_key_changes_with_any_input(change):
    assert cpu_kernels.build_key(**{**BASE, **change}) != cpu_kernels.build_key(**BASE)


def test_flags_cannot_run_together_into_the_same_key():
    joined = dict(compile_flags=["-O3", "-m"], link_flags=["avx2"])
    split = dict(compile_flags=["-O3"], link_flags=["-m", "avx2"])
    assert cpu_kernels.build_key(**{**BASE, **joined}) != cpu_kernels.build_key(**{**BASE, **split})


def test_extension_name_depends_on_the_contents_not_the_checkout(tmp_path, monkeypatch):
    name = cpu_kernels.extension_name()
    assert name.isidentifier() and name.startswith(cpu_kernels.EXTENSION_PREFIX)
    checkout = Path(cpu_kernels.__file__).resolve().parents[2]
    assert str(checkout) not in name and checkout.name not in name
    other_checkout = tmp_path / "another-clone" / "scan_cpu.cpp"
    other_checkout.parent.mkdir()
    shutil.copy(cpu_kernels.SOURCE, other_checkout)
    monkeypatch.setattr(cpu_kernels, "SOURCE", other_checkout)
    assert cpu_kernels.extension_name() == name
    other_checkout.write_bytes(other_checkout.read_bytes() + b"\n// edited\n")
    assert cpu_kernels.extension_name() != name


def test_compile_flags_keep_nan_and_inf():
    flags = cpu_kernels.compile_flags("AVX2")
    assert "-fno-finite-math-only" in flags
    assert flags.index("-fno-finite-math-only") > flags.index("-ffast-math")  # the later flag wins


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """cpp_extension pointed at tmp_path; load() records its sources and 'compiles' when asked to."""
    calls = []
    compiles = {"next": True}
    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose: str(tmp_path / name))
    (tmp_path / cpu_kernels.extension_name()).mkdir()

    def load(name, sources, build_directory, **options):
        calls.append(dict(name=name, sources=sources, build_directory=build_directory, **options))
        library = Path(build_directory) / f"{name}.so"
        if compiles["next"]:
            library.write_bytes(b"library")
            os.utime(library, (library.stat().st_mtime + 5,) * 2)  # newer than the source copy
        return "module"

    monkeypatch.setattr(cpp_extension, "load", load)
    return calls, compiles


def test_build_compiles_a_copy_in_the_build_folder_and_says_so_once(fake_build, capsys):
    calls, compiles = fake_build
    assert cpu_kernels.build() == "module"
    source = Path(calls[0]["sources"][0])
    assert source.parent == Path(calls[0]["build_directory"]) and source.read_bytes() == cpu_kernels.SOURCE.read_bytes()
    assert "-fno-finite-math-only" in calls[0]["extra_cflags"]
    assert "building the fused CPU scan kernels" in capsys.readouterr().err
    copied_at = source.stat().st_mtime_ns
    compiles["next"] = False  # cached: ninja finds nothing to do
    cpu_kernels.build()
    assert capsys.readouterr().err == ""
    assert source.stat().st_mtime_ns == copied_at  # not rewritten, so ninja sees no change
    compiles["next"] = True  # ninja rebuilt anyway (say, a changed header): reported after the fact
    cpu_kernels.build()
    assert "rebuilt the fused CPU scan kernels" in capsys.readouterr().err
