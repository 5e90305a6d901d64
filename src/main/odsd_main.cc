// odsd: the ODS server process. Everything it does is ods::main::RunOdsd.

#include "ods/main/odsd.h"

int main(int argc, char** argv) { return ods::main::RunOdsd(argc, argv); }
