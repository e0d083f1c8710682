"""Its requirements.txt names a package that exists nowhere, so this line is never reached."""

print("the script ran")
