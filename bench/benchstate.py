"""What the bench scripts share about a cella state directory they made."""
import subprocess


def unmount_state(state):
    """Unmounts every file system mounted below state (each app's /data is one of
    its own, mounted between runs: docs/security.md "Storage"), deepest first, which
    also frees their loop devices. Returns how many it unmounted."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(state + "/")]
    done = 0
    for mp in sorted(mounts, key=len, reverse=True):
        done += subprocess.run(["umount", mp], check=False).returncode == 0
    return done
