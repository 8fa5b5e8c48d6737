/*
 * Docket's bundled rules. Every rule carries `level` (malicious | suspicious | info) and a short
 * `description`; the wrapper turns each match into one Cortex taxonomy at that level.
 */

rule EICAR_Test_File
{
    meta:
        level = "malicious"
        description = "EICAR anti-virus test file"
    strings:
        // In hex so that this rule file is not itself reported as EICAR by scanners on a checkout.
        $eicar = { 58 35 4F 21 50 25 40 41 50 5B 34 5C 50 5A 58 35 34 28 50 5E 29 37 43 43 29 37 7D 24
                   45 49 43 41 52 2D 53 54 41 4E 44 41 52 44 2D 41 4E 54 49 56 49 52 55 53 2D 54 45 53
                   54 2D 46 49 4C 45 21 24 48 2B 48 2A }
    condition:
        // The test file is valid only near the start of a file, which keeps documents that quote it clean.
        $eicar in (0..128)
}

rule PE_Executable
{
    meta:
        level = "suspicious"
        description = "Windows PE executable (MZ header and PE signature)"
    condition:
        // A bare "MZ" prefix is common in text; the PE signature at e_lfanew is what makes it a PE.
        filesize > 0x40 and uint16(0) == 0x5A4D and
        uint32(0x3C) < filesize - 4 and uint32(uint32(0x3C)) == 0x00004550
}

rule PowerShell_Encoded_Command
{
    meta:
        level = "suspicious"
        description = "PowerShell started with a base64-encoded command"
    strings:
        $powershell = /\bpowershell(\.exe)?\b/ nocase
        // -e, -ec, -enc, -encodedcommand (and any prefix PowerShell accepts) followed by base64.
        $encoded_arg = /\s[-\/]e(n(c(o(d(e(d(c(o(m(m(a(n(d)?)?)?)?)?)?)?)?)?)?)?)?|c)?\s+[A-Za-z0-9+\/]{16,}={0,2}/ nocase
        $from_base64 = "FromBase64String(" nocase
    condition:
        $powershell and ($encoded_arg or $from_base64)
}

rule PHP_Webshell_Eval
{
    meta:
        level = "malicious"
        description = "PHP code evaluating or executing request input"
    strings:
        $php = "<?php" nocase
        // eval($_POST[..]), assert(base64_decode($_REQUEST[..])), system($_GET[..]) and the like.
        $exec_input = /\b(eval|assert|system|exec|passthru|shell_exec|popen)\s*\(\s*((base64_decode|gzinflate|gzuncompress|str_rot13|stripslashes)\s*\(\s*)*\$_(POST|GET|REQUEST|COOKIE|SERVER)\b/ nocase
    condition:
        $php and $exec_input
}
