#!/usr/bin/python3
"""apktool: decodes an Android APK with apktool and reports what its manifest declares: package name,
version, SDK levels, permissions and components.

Speaks IBM Menagerie's file protocol: the APK is at $DOCKET_INPUT (default /data/input) and the
JSON report is written to the file `result` beside it. A failure exits non-zero with the reason on
stderr. `--file INPUT --result RESULT` overrides both paths.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
import zipfile

ANDROID = '{http://schemas.android.com/apk/res/android}'
FRAMEWORK_APK = '/usr/share/android-framework-res/framework-res.apk'
# /tmp is the only writable place besides the job volume (whose root the engine's user cannot write).
SCRATCH = '/tmp/apktool'
DECODE_TIMEOUT_S = 240
COMPONENTS = {'activity': 'activities', 'activity-alias': 'activities', 'service': 'services',
              'receiver': 'receivers', 'provider': 'providers'}


def read_apktool_yml(path):
    """The `section: {key: value}` scalars of apktool.yml; its first line is a Java type tag that
    a YAML loader refuses, and only two levels of plain scalars are needed."""
    sections = {}
    current = None
    try:
        with open(path, encoding='utf-8') as handle:
            for line in handle:
                if not line.strip() or line.startswith('!!'):
                    continue
                key, _, value = line.strip().partition(':')
                value = value.strip().strip('\'"')
                if not line.startswith(' '):
                    current = key
                    sections[key] = value if value else {}
                elif isinstance(sections.get(current), dict) and value and not key.startswith('-'):
                    sections[current][key] = value
    except FileNotFoundError:
        pass
    return sections


def qualify(name, package):
    """Component names may be relative to the package (`.Main`, or `Main` with no dot)."""
    if not name:
        return name
    if name.startswith('.'):
        return package + name
    return name if '.' in name else '%s.%s' % (package, name)


def string_resources(decoded):
    try:
        root = ElementTree.parse(os.path.join(decoded, 'res', 'values', 'strings.xml')).getroot()
    except (FileNotFoundError, ElementTree.ParseError):
        return {}
    return {element.get('name'): ''.join(element.itertext()) for element in root.iter('string')}


def describe(decoded):
    manifest = ElementTree.parse(os.path.join(decoded, 'AndroidManifest.xml')).getroot()
    strings = string_resources(decoded)

    def resolve(value):
        if value and value.startswith('@string/'):
            return strings.get(value[len('@string/'):], value)
        return value

    package = manifest.get('package') or ''
    meta = read_apktool_yml(os.path.join(decoded, 'apktool.yml'))
    version = meta.get('versionInfo') if isinstance(meta.get('versionInfo'), dict) else {}
    sdk = meta.get('sdkInfo') if isinstance(meta.get('sdkInfo'), dict) else {}
    uses_sdk = manifest.find('uses-sdk')
    permissions = []
    for tag in ('uses-permission', 'uses-permission-sdk-23', 'uses-permission-sdk-m'):
        for element in manifest.iter(tag):
            name = element.get(ANDROID + 'name')
            if name and name not in permissions:
                permissions.append(name)
    report = {
        'package': package,
        'versionName': resolve(version.get('versionName') or manifest.get(ANDROID + 'versionName')),
        'versionCode': version.get('versionCode') or manifest.get(ANDROID + 'versionCode'),
        'minSdkVersion': sdk.get('minSdkVersion') or (uses_sdk.get(ANDROID + 'minSdkVersion') if uses_sdk is not None else None),
        'targetSdkVersion': sdk.get('targetSdkVersion') or (uses_sdk.get(ANDROID + 'targetSdkVersion') if uses_sdk is not None else None),
        'permissions': permissions,
        'declaredPermissions': [e.get(ANDROID + 'name') for e in manifest.iter('permission') if e.get(ANDROID + 'name')],
        'activities': [], 'services': [], 'receivers': [], 'providers': [],
        'exported': [],
        'apktool': meta.get('version'),
    }
    application = manifest.find('application')
    if application is not None:
        report['application'] = {
            'label': resolve(application.get(ANDROID + 'label')),
            'debuggable': application.get(ANDROID + 'debuggable') == 'true',
            'allowBackup': application.get(ANDROID + 'allowBackup') != 'false',
        }
        for element in application:
            group = COMPONENTS.get(element.tag)
            if not group:
                continue
            name = qualify(element.get(ANDROID + 'name'), package)
            report[group].append(name)
            exported = element.get(ANDROID + 'exported')
            # Before Android 12 a component with an intent filter was exported unless it said otherwise.
            if exported == 'true' or (exported is None and element.find('intent-filter') is not None):
                report['exported'].append(name)
    return report


class NoRoom(RuntimeError):
    """The decoded files outgrew the scratch space (the /tmp tmpfs, or the file size limit)."""


def apktool_error(completed):
    """The first line apktool printed about the failure and its root cause, not the whole stack trace."""
    lines = [line.strip() for line in (completed.stderr or completed.stdout).splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith('Caused by:')]
    first = next((line for line in lines if not line.startswith(('I:', 'W:', 'at '))), '')
    summary = ' / '.join(dict.fromkeys(filter(None, [first] + causes[-1:])))[:1500]
    return summary or (lines[-1][:500] if lines else 'it printed nothing')


def run_apktool(apk, out):
    framework = os.path.join(SCRATCH, 'framework')
    if not os.path.isdir(framework):
        os.makedirs(framework)
        # apktool wants framework 1.apk in a folder of its own; a link keeps the 45 MB file off /tmp.
        os.symlink(FRAMEWORK_APK, os.path.join(framework, '1.apk'))
    shutil.rmtree(out, ignore_errors=True)
    completed = subprocess.run(
        # -s: the report needs no smali, and disassembling classes.dex would fill the small /tmp.
        ['apktool', '-JDuser.home=/tmp', '-JXX:-UsePerfData', 'd', '-f', '-s', '-p', framework, '-o', out, apk],
        capture_output=True, text=True, errors='replace', timeout=DECODE_TIMEOUT_S)
    if completed.returncode == 0 and os.path.exists(os.path.join(out, 'AndroidManifest.xml')):
        return
    message = 'apktool could not decode the file (exit %d): %s' % (completed.returncode, apktool_error(completed))
    if any(sign in completed.stderr + completed.stdout for sign in ('No space left on device', 'File too large')):
        raise NoRoom(message)
    raise RuntimeError(message)


def slim_copy(apk, target):
    """The APK with only its manifest and resource table: what the report reads, minus assets,
    code and resource files, which can be far larger than the scratch space."""
    with zipfile.ZipFile(apk) as source, zipfile.ZipFile(target, 'w', zipfile.ZIP_DEFLATED) as slim:
        for name in ('AndroidManifest.xml', 'resources.arsc'):
            try:
                slim.writestr(name, source.read(name))
            except KeyError:
                pass


def decode(apk):
    """Decodes the whole APK when it fits in /tmp, else its manifest and resource table only."""
    shutil.rmtree(SCRATCH, ignore_errors=True)
    os.makedirs(SCRATCH)
    out = os.path.join(SCRATCH, 'decoded')
    try:
        run_apktool(apk, out)
        return out, None
    except NoRoom as full:
        shutil.rmtree(out, ignore_errors=True)
        slim = os.path.join(SCRATCH, 'slim.apk')
        slim_copy(apk, slim)
        run_apktool(slim, out)
        return out, 'decoded from the manifest and resource table only: the full decode did not fit in /tmp (%s)' % full


def check_apk(path):
    """Refuses what is plainly not an APK before paying for a JVM start."""
    with open(path, 'rb') as handle:
        if handle.read(4) != b'PK\x03\x04':
            raise ValueError('not an APK: the file is not a ZIP archive')
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as error:
        raise ValueError('not an APK: the ZIP archive is damaged (%s)' % error)
    if 'AndroidManifest.xml' not in names:
        raise ValueError('not an APK: the ZIP archive holds no AndroidManifest.xml')


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def main(args):
    source = os.environ.get('DOCKET_INPUT', '/data/input')
    result = None
    if '--file' in args:
        source = args[args.index('--file') + 1]
    if '--result' in args:
        result = args[args.index('--result') + 1]
    result = result or os.path.join(os.path.dirname(source), 'result')
    try:
        check_apk(source)
        decoded, partial = decode(source)
        report = describe(decoded)
        report['partial'] = partial
        report['size'] = os.path.getsize(source)
        report['sha256'] = sha256(source)
    except Exception as error:  # Menagerie's protocol: a failure is a non-zero exit and a message
        print('apktool: %s' % error, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    with open(result, 'w') as handle:
        json.dump(report, handle, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
